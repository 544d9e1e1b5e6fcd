"""ml_service on real weights and real (synthetic, drawn) images: embeddings, SIFT, masks, calibration."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from catalog import synthetic
from ml_service import embedding, fusion, imaging, local_features, networks, weights


def shot(individual: int, seed: int, size=(480, 360)) -> imaging.Crop:
    photo = synthetic.render(synthetic.make_pattern(individual), seed=seed, size=size)
    image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
    return imaging.crop(image, photo.box)


@pytest.fixture(scope="module")
def mobilenet() -> embedding.EmbeddingModel:
    return embedding.get_model("imagenet-mobilenetv2")


def test_mobilenet_embeddings_are_normalised_and_tell_individuals_apart(mobilenet) -> None:
    crops = [shot(1, 10), shot(1, 11), shot(2, 12), shot(3, 13)]
    vectors = mobilenet.predict(crops, batch_size=2)
    assert vectors.shape == (4, 1280) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > max(sims[0, 2], sims[0, 3])  # same coat, other photo: closest
    assert mobilenet.key == "imagenet-mobilenetv2@gem3-flip-224-v1"


def test_embedding_is_deterministic_and_batch_independent(mobilenet) -> None:
    crops = [shot(4, 20), shot(5, 21), shot(6, 22)]
    together = mobilenet.predict(crops, batch_size=3)
    alone = np.concatenate([mobilenet.predict([c]) for c in crops])
    assert np.allclose(together, alone, atol=1e-4)


def test_unknown_model_names_are_refused() -> None:
    with pytest.raises(KeyError, match="known: imagenet-mobilenetv2"):
        embedding.get_model("no-such-model")


def test_sift_finds_more_verified_matches_on_the_same_individual() -> None:
    matcher = local_features.get_matcher("sift")
    a, b, other = (
        matcher.extract(c)
        for c in (shot(7, 30, (800, 600)), shot(7, 31, (800, 600)), shot(8, 32, (800, 600)))
    )
    same, different = matcher.match(a, b), matcher.match(a, other)
    assert same.inliers > different.inliers
    assert same.pairs.shape == (same.inliers, 4)
    restored = local_features.Features.from_npz(a.to_npz())
    assert np.array_equal(restored.keypoints, a.keypoints) and restored.image_size == a.image_size


def test_a_mask_keeps_keypoints_off_the_background() -> None:
    c = shot(9, 40, (800, 600))
    w, h = c.image.size
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True  # only the centre is "animal"
    masked = local_features.get_matcher("sift").extract(imaging.Crop(c.image, mask))
    unmasked = local_features.get_matcher("sift").extract(c)
    assert len(masked.keypoints) > 0
    x, y = masked.keypoints[:, 0], masked.keypoints[:, 1]
    assert ((x >= w / 4 - 2) & (x <= 3 * w / 4 + 2) & (y >= h / 4 - 2) & (y <= 3 * h / 4 + 2)).all()
    ux, uy = unmasked.keypoints[:, 0], unmasked.keypoints[:, 1]
    assert not ((ux >= w / 4) & (ux <= 3 * w / 4) & (uy >= h / 4) & (uy <= 3 * h / 4)).all()
    # The embedding sees the masked pixels as flat background, not the grass.
    flat = np.asarray(imaging.masked_pixels(imaging.Crop(c.image, mask)))
    assert (flat[~mask] == (124, 116, 104)).all()


@pytest.mark.parametrize("n_pairs", [60, 600])  # logistic below ISOTONIC_MIN_PAIRS, isotonic above
def test_calibration_is_monotone_and_fusion_never_inverts_evidence(n_pairs: int) -> None:
    rng = np.random.default_rng(n_pairs)
    same = rng.random(n_pairs) < 0.3
    cosine = np.where(same, rng.normal(0.8, 0.08, n_pairs), rng.normal(0.6, 0.1, n_pairs))
    inliers = np.where(same, rng.poisson(30, n_pairs), rng.poisson(6, n_pairs)).astype(float)
    model = fusion.FusionModel.fit({"cosine": cosine, "inliers": inliers}, same)
    grid = np.linspace(0, 1, 101)
    for kind, values in (("cosine", grid), ("inliers", np.linspace(0, 200, 101))):
        p = model.calibrators[kind].predict(values)
        assert (np.diff(p) >= -1e-12).all() and ((p > 0) & (p < 1)).all()
    assert all(w >= 0 for w in model.weights.values())
    fused = model.predict({"cosine": grid, "inliers": np.full(101, 10.0)})
    assert (np.diff(fused) >= -1e-12).all()
    restored = fusion.FusionModel.from_dict(model.to_dict())
    assert np.allclose(restored.predict({"cosine": grid, "inliers": np.full(101, 10.0)}), fused)
    # Calibrated: among pairs given p in [0.8, 1], most are truly the same individual.
    p = model.predict({"cosine": cosine, "inliers": inliers})
    assert same[p >= 0.8].mean() > 0.8


def test_bands_and_new_individual_verdict() -> None:
    assert [fusion.band(p) for p in (0.99, 0.95, 0.9, 0.8, 0.6, 0.5, 0.49, 0.0)] == [
        "excellent",
        "excellent",
        "good",
        "good",
        "fair",
        "fair",
        "uncertain",
        "uncertain",
    ]
    rows = fusion.aggregate(["a1", "a2", "a3"], ["i1", "i1", "i2"], np.array([0.3, 0.45, 0.2]))
    assert [(r.individual, r.annotation) for r in rows] == [("i1", "a2"), ("i2", "a3")]
    assert fusion.probably_new(rows)
    assert not fusion.probably_new(fusion.aggregate(["a"], ["i"], np.array([0.7])))


@pytest.mark.parametrize("name", ["aliked-lightglue", "disk-lightglue", "xfeat-lighterglue"])
def test_learned_matchers_run_on_the_published_weights(name: str) -> None:
    matcher = local_features.get_matcher(name)
    base = shot(7, 30, (640, 480))
    w, h = base.image.size
    shifted = imaging.Crop(base.image.crop((12, 8, w, h)))  # the same view, reframed
    a, b, other = (matcher.extract(c) for c in (base, shifted, shot(8, 32, (640, 480))))
    assert a.descriptors.shape[1] == (64 if name.startswith("xfeat") else 128) and 0 < len(a.keypoints) <= 512
    same, different = matcher.match(a, b), matcher.match(a, other)
    assert same.inliers > different.inliers
    assert same.inliers >= 0.3 * len(a.keypoints)
    # Verified matches respect the geometry: the reframing moved every point by (-12, -8).
    offsets = same.pairs[:, 2:] - same.pairs[:, :2]
    assert tuple(np.median(offsets, axis=0)) == pytest.approx((-12, -8), abs=2)
    assert 0.0 < same.confidence <= 1.0


def test_lightglue_checkpoint_keys_are_renamed_to_kornias_layout() -> None:
    import torch

    state = {
        "self_attn.3.Wqkv.weight": torch.zeros(1),
        "cross_attn.0.to_out.bias": torch.zeros(1),
        "transformers.1.self_attn.Wqkv.bias": torch.zeros(1),
        "input_proj.weight": torch.zeros(1),
    }
    assert sorted(local_features._rename_lightglue_keys(state)) == [
        "input_proj.weight",
        "transformers.0.cross_attn.to_out.bias",
        "transformers.1.self_attn.Wqkv.bias",
        "transformers.3.self_attn.Wqkv.weight",
    ]


def test_miewid_loader_reads_a_saved_model_in_the_published_format(tmp_path, monkeypatch) -> None:
    """A randomly initialised MiewID saved as safetensors, with the ArcFace head and `model.` prefix a
    checkpoint carries, loads into the registry's model and gives the original model's embeddings."""
    import torch
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the tests never download
    torch.manual_seed(0)
    original = networks.MiewIdNetwork()
    # Calibrate the random network's batch-norm statistics so activations stay in a sane range (a random
    # EfficientNet in eval mode otherwise blows up to ~1e6, where float summation order alone shows).
    for module in original.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    with torch.no_grad():
        for _ in range(3):
            original(torch.randn(4, 3, 96, 96))
    original.eval()
    state = {f"model.{k}": v.contiguous() for k, v in original.state_dict().items()}
    state["model.final.kernel"] = torch.zeros(2152, 10)  # training head, ignored
    (tmp_path / "miewid").mkdir()
    save_file(state, str(tmp_path / "miewid" / "model.safetensors"))

    model = embedding.MiewIdMsv3(weights_path=tmp_path / "miewid")
    model.preprocessing = embedding.Preprocessing(size=96)  # small input keeps the test fast
    model.runtime = "torch"  # the loader is under test; a random network amplifies any runtime's rounding
    crops = [shot(1, 50), shot(2, 51)]
    vectors = model.predict(crops)
    assert vectors.shape == (2, 2152) and model.dim == 2152
    # Run the original exactly as the registry runs models (channels-last, one batch): a random network
    # amplifies float summation differences between memory layouts, a wrong load would differ everywhere.
    reference = original.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference(model.preprocessing(crops)), dim=1).numpy()
    assert np.allclose(vectors, expected, atol=1e-3)


def test_miewid_without_weights_offline_fails_clearly(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RESIGHT_MIEWID_WEIGHTS", raising=False)
    with pytest.raises(weights.WeightsMissing, match="RESIGHT_MIEWID_WEIGHTS"):
        embedding.MiewIdMsv3().load()


def test_bf16_embeddings_are_a_version_of_their_own_and_agree_with_fp32(mobilenet) -> None:

    fast = embedding.get_model("imagenet-mobilenetv2", bf16=True)
    assert fast.key == mobilenet.key + "+bf16"
    crops = [shot(1, 10), shot(2, 12)]
    assert np.abs(fast.predict(crops) - mobilenet.predict(crops)).max() < 0.05


def test_the_compiled_network_gives_the_eager_vectors_for_any_batch_size(mobilenet) -> None:
    compiled = embedding.get_model("imagenet-mobilenetv2")
    compiled.compiled = True
    crops = [shot(1, 10), shot(2, 12), shot(3, 13)]
    assert compiled.key == mobilenet.key  # the same vectors: the same version
    assert np.abs(compiled.predict(crops, batch_size=2) - mobilenet.predict(crops)).max() < 1e-4
    assert np.abs(compiled.predict(crops[:1]) - mobilenet.predict(crops[:1])).max() < 1e-4


def test_onnx_runtime_gives_the_torch_vectors_for_any_batch_size() -> None:
    eager = embedding.get_model("imagenet-mobilenetv2")
    eager.runtime = "torch"
    fast = embedding.get_model("imagenet-mobilenetv2")
    fast.runtime = "onnx"
    crops = [shot(1, 10), shot(2, 12), shot(3, 13)]
    assert fast.key == eager.key  # the same vectors: the same version, one search space
    assert np.abs(fast.predict(crops, batch_size=2) - eager.predict(crops)).max() < 1e-4
    assert np.abs(fast.predict(crops[:1]) - eager.predict(crops[:1])).max() < 1e-4
    # The export is made once and reused by the next process (here: the next model object).
    exported = fast.exported_onnx()
    stamp = exported.stat().st_mtime_ns
    again = embedding.get_model("imagenet-mobilenetv2")
    again.runtime = "onnx"
    again.predict(crops[:1])
    assert again.exported_onnx() == exported and exported.stat().st_mtime_ns == stamp


def test_other_weights_never_reuse_an_onnx_export() -> None:
    model = embedding.get_model("imagenet-mobilenetv2")
    network = model._build()
    state = network.state_dict()
    changed = {k: (v + 0.01 if k.endswith("0.0.weight") else v) for k, v in state.items()}
    network.load_state_dict(changed)
    assert model.onnx_path(network) != model.onnx_path(model._build())


def test_the_runtime_is_chosen_by_precision_and_compilation() -> None:
    model = embedding.get_model("imagenet-mobilenetv2")
    assert model.resolved_runtime() == ("torch" if torch.cuda.is_available() else "onnx")
    assert embedding.get_model("imagenet-mobilenetv2", bf16=True).resolved_runtime() == "torch"
    model.compiled = True
    assert model.resolved_runtime() == "torch"
    model.runtime = "tensorrt"
    with pytest.raises(ValueError, match="Unknown embedding runtime"):
        model.resolved_runtime()

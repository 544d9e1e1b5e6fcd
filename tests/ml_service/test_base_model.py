"""The shipped multi-species base model (`resight-base`) and the command that rebuilds it: the file in the
project loads offline, embeds to unit vectors and has a version key of its own; the command trains, measures
(the paper split and leave-one-species-out), writes fp16 weights with their version and the model card; the
recipe's species-balanced sampling; training continuing from a trained network."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from catalog import synthetic
from ml_service import base_model, embedding, training
from ml_service.imaging import crop, load_oriented
from tests.ml_service.test_models import shot


def test_the_shipped_base_model_loads_offline_and_embeds_unit_vectors() -> None:
    model = embedding.get_model()  # the default of a new install
    assert isinstance(model, embedding.ResightBase) and model.path == base_model.WEIGHTS
    assert model.key == f"resight-base@{model.version}"
    others = {embedding.get_model("imagenet-mobilenetv2").key, embedding.MiewIdMsv3().key}
    assert model.key not in others  # its vectors never share a space with another model's
    state = load_file(str(base_model.WEIGHTS))
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float16}
    assert base_model.WEIGHTS.stat().st_size < 8_000_000  # a few MB in the repository
    meta = model.metadata
    assert base_model.tensors_digest(state) == meta["tensors_sha256"]  # the file is what was built
    assert meta["tensors_sha256"][:10] in model.version  # new weights, new version, new space
    assert meta["licence"] == "CC-BY-4.0" and "dogfacenet-dev" in meta["trained_on"]

    crops = [shot(1, 10), shot(1, 11), shot(2, 12), shot(3, 13)]
    vectors = model.predict(crops, batch_size=3)
    assert model.dim == 1280 and vectors.shape == (4, 1280) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > max(sims[0, 2], sims[0, 3])  # the same coat in another photo comes first

    card = base_model.CARD.read_text()
    assert model.key in card and base_model.file_sha256(base_model.WEIGHTS) in card
    assert "Leave `catfaces` out" in card and "python -m ml_service.base_model" in card and "WiSE-FT" in card


def test_a_missing_weights_file_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(embedding.weights.WeightsMissing, match=r"ml_service\.base_model"):
        embedding.ResightBase(tmp_path / "nowhere.safetensors")
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"bn.weight": torch.ones(4)}, str(other), metadata={"name": "something-else"})
    with pytest.raises(embedding.weights.WeightsMissing, match="not a resight-base"):
        embedding.ResightBase(other)


def test_species_balanced_sampling_draws_each_species_about_equally() -> None:
    species = ["dog"] * 900 + ["cat"] * 100
    weights = training.species_weights(species, 1.0)
    assert weights[:900].sum() == pytest.approx(weights[900:].sum())
    config = training.TrainConfig(batch_size=50, species_balance=1.0)
    batches = training.index_batches(list(range(1000)), config, torch.Generator().manual_seed(0), species)
    drawn = Counter(species[i] for batch in batches for i in batch)
    assert sum(drawn.values()) == 1000 and 400 < drawn["cat"] < 600  # not 100 of 1,000
    half = training.TrainConfig(batch_size=50, species_balance=0.5)
    drawn = Counter(
        species[i]
        for batch in training.index_batches(
            list(range(1000)), half, torch.Generator().manual_seed(0), species
        )
        for i in batch
    )
    assert 180 < drawn["cat"] < 320  # sqrt(100) / (sqrt(100) + sqrt(900)) = 25 %
    plain = training.index_batches(list(range(1000)), training.TrainConfig(batch_size=50), torch.Generator())
    assert sorted(i for batch in plain for i in batch) == list(range(1000))  # every photo once


def make_species(root: Path, individuals: int, pattern: int) -> Path:
    rows = []
    for i in range(individuals):
        folder = root / "images" / f"a{i}"
        folder.mkdir(parents=True)
        for s in range(5):
            photo = synthetic.render(synthetic.make_pattern(pattern + i), seed=97 * i + s, size=(120, 90))
            (folder / f"{s}.jpg").write_bytes(photo.jpeg)
            rows.append({"path": f"images/a{i}/{s}.jpg", "individual_id": f"a{i}", "viewpoint": "left"})
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "individual_id", "viewpoint"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_the_command_trains_measures_and_writes_versioned_fp16_weights_and_a_card(
    tmp_path: Path, monkeypatch
) -> None:
    # Eager PyTorch for these tiny networks: an ONNX export per trained model would cost more than the run.
    monkeypatch.setattr(embedding.EmbeddingModel, "runtime", "torch")
    stripes = make_species(tmp_path / "stripes", 8, 500)
    spots = make_species(tmp_path / "spots", 6, 700)
    with pytest.raises(SystemExit, match="No known licence for stripes"):
        base_model.main([str(stripes), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit):  # argparse: a share is between 0 and 1
        base_model.main([str(stripes), "--out", str(tmp_path / "run"), "--mix", "1.5"])
    assert not (tmp_path / "run").exists()
    shipped_before = base_model.WEIGHTS.stat().st_mtime_ns
    argv = [str(stripes), str(spots), "--out", str(tmp_path / "run"), "--epochs", "1", "--image-size", "64"]
    argv += ["--batch-size", "8", "--device", "cpu", "--licence", "stripes=CC0", "--licence", "spots=MIT"]
    assert base_model.main(argv) == 0

    out = tmp_path / "run"
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == {"start", "trained"}
    assert set(report["results"]["trained"]["test"]) == {"stripes", "spots"}
    held = {entry["held_out"]: entry for entry in report["leave_one_out"]}
    assert set(held) == {"stripes", "spots"}
    assert set(held["spots"]["trained_on"]) == {"stripes"}  # never saw the species it is scored on
    assert held["spots"]["trained"]["all"]["spots"]["queries"] == 30  # all of its photos
    assert report["fp16_min_cosine"] > 0.999  # fp16 keeps the vectors
    assert report["mix"] == base_model.MIX  # shipped: trained and ImageNet start, weight for weight

    shipped = out / base_model.WEIGHTS.name
    assert base_model.WEIGHTS.stat().st_mtime_ns == shipped_before  # without --ship: the source tree kept
    model = embedding.ResightBase(shipped)
    with safe_open(str(shipped), framework="pt") as handle:
        assert handle.metadata()["trained_on"] == "stripes (CC0), spots (MIT)"
    assert model.key.startswith("resight-base@") and model.key != embedding.get_model().key
    assert model.preprocessing.size == 64
    card = (out / base_model.CARD.name).read_text()
    assert model.key in card and "Leave `spots` out" in card and "--licence spots=MIT" in card

    # A share of 0 is the ImageNet start itself: the same vectors as imagenet-mobilenetv2.
    start_only = embedding.FineTuned(base_model.mix_with_start(out / "all" / training.EXPORT, 0.0))
    start_only.preprocessing = embedding.Preprocessing(224)
    crops = [shot(1, 10), shot(2, 12)]
    imagenet = embedding.get_model("imagenet-mobilenetv2").predict(crops)
    assert np.allclose(start_only.predict(crops), imagenet, atol=1e-4)

    # Training continues from a trained network (the platform's retraining starts from the base model).
    items = sorted((spots / "images").rglob("*.jpg"))
    samples = [training.Sample(p, p.parent.name, "spots") for p in items]
    config = training.TrainConfig(image_size=64, epochs=1, batch_size=8, device="cpu", init=str(shipped))
    history = training.train(samples, tmp_path / "continued", config)
    assert len(history.epochs) == 1
    with pytest.raises(ValueError, match="is a mobilenetv2 network"):
        training.train(
            samples, tmp_path / "other", training.TrainConfig(backbone="resnet18", init=str(shipped))
        )
    vectors = embedding.get_model(str(tmp_path / "continued" / training.EXPORT)).predict(
        [crop(load_oriented(p)) for p in items[:2]]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

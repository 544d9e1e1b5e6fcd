"""Fine-tuning (ml_service.training, augment, splits, retrain, finetune): the loss pieces, the paper's split
rules, the decoded cache and the augmentation on the device, a short deterministic run on small real-format
images that resumes exactly after an interruption, the exported model embedding like any other version, and
the one retraining path scoring the starting and the trained model per species."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog import synthetic
from ml_service import augment, embedding, retrain, splits, training
from ml_service.evaluation import Item
from ml_service.imaging import crop, load_oriented


def test_dynamic_margins_give_rare_identities_larger_margins() -> None:
    margins = training.dynamic_margins([2, 5, 40], 0.1, 0.5)
    assert margins[0] == pytest.approx(0.5) and margins[2] == pytest.approx(0.1)
    assert margins[0] > margins[1] > margins[2]
    assert torch.all(training.dynamic_margins([4, 4], 0.1, 0.5) == 0.1)


def test_subcenter_arcface_penalises_the_true_class_and_takes_the_best_subcentre() -> None:
    torch.manual_seed(0)
    head = training.SubCenterArcFace(8, 3, 3, scale=10.0, margins=torch.full((3,), 0.3))
    embeddings = torch.randn(4, 8)
    labels = torch.tensor([0, 1, 2, 0])
    cos = head.cosine(embeddings)
    every = torch.nn.functional.normalize(embeddings) @ torch.nn.functional.normalize(head.weight).T
    assert every.shape == (4, 9)  # three sub-centres per class
    assert torch.allclose(cos, every.view(4, 3, 3).amax(2))
    with_margin = head(embeddings, labels)
    plain = torch.nn.functional.cross_entropy(cos * 10.0, labels)
    assert with_margin > plain  # the margin makes the true class harder


def make_dataset(root: Path, individuals: int = 6, photos: int = 6) -> list[Item]:
    items = []
    for i in range(individuals):
        folder = root / "images" / f"animal{i}"
        folder.mkdir(parents=True)
        for s in range(photos):
            shot = synthetic.render(synthetic.make_pattern(300 + i), seed=1000 * i + s, size=(160, 120))
            path = folder / f"{s}.jpg"
            path.write_bytes(shot.jpeg)
            items.append(Item(path, f"animal{i}", "leopard", "left", encounter=f"e{i}-{s // 2}"))
    return items


def test_the_split_follows_the_paper(tmp_path: Path) -> None:
    items = make_dataset(tmp_path, individuals=12, photos=8)
    items += [
        Item(tmp_path / "x.jpg", "rare", "leopard", "left", "ex"),
        Item(tmp_path / "y.jpg", "rare", "leopard", "left", "ey"),
    ]
    split = splits.paper_split(items, test_fraction=0.5, seed=3)
    train_ids = {splits.identity(i) for i in split.train}
    test_ids = {splits.identity(i) for i in split.test}
    assert split.unseen and not (split.unseen & train_ids)  # unseen individuals never train
    assert test_ids - split.unseen <= train_ids  # the other test individuals do
    assert len(split.unseen) == len(test_ids) // 2 or len(split.unseen) == (len(test_ids) + 1) // 2
    for key in test_ids:
        members = [i for i in split.test if splits.identity(i) == key]
        assert len(members) <= splits.MAX_TEST
        assert len({m.encounter for m in members}) == len(members)  # one per encounter
    counts = {k: sum(splits.identity(i) == k for i in split.train) for k in train_ids}
    assert min(counts.values()) >= splits.MIN_TRAIN
    assert not set(split.train) & set(split.test)
    assert splits.paper_split(items, 0.5, seed=3) == split  # deterministic


CONFIG = training.TrainConfig(image_size=64, epochs=3, batch_size=4, warmup_epochs=0.5, seed=7, device="cpu")


def samples(items: list[Item]) -> list[training.Sample]:
    return [training.Sample(i.path, splits.identity(i)) for i in items]


def test_a_run_is_deterministic_and_resumes_exactly_after_an_interruption(tmp_path: Path) -> None:
    data = samples(make_dataset(tmp_path / "data"))
    whole = training.train(data, tmp_path / "whole", CONFIG)
    assert [e.epoch for e in whole.epochs] == [1, 2, 3]
    assert whole.epochs[-1].loss < whole.epochs[0].loss  # it learns
    assert whole.epochs[0].lr > whole.epochs[-1].lr  # warm-up done, decaying

    first = training.train(data, tmp_path / "cut", CONFIG, stop_after=1)  # "killed" after one epoch
    assert len(first.epochs) == 1 and not (tmp_path / "cut" / "checkpoint.pt.tmp").exists()
    cache = tmp_path / "cut" / f"decoded-{augment.cache_size(CONFIG.image_size)}.u8"
    assert cache.is_file()  # kept for the resumed run, which reuses it
    built = cache.stat().st_mtime_ns
    resumed = training.train(data, tmp_path / "cut", CONFIG, stop_after=1)
    assert len(resumed.epochs) == 2 and cache.stat().st_mtime_ns == built
    resumed = training.train(data, tmp_path / "cut", CONFIG)
    assert not cache.exists() and not list((tmp_path / "whole").glob("decoded-*"))  # finished: removed
    assert [round(e.loss, 5) for e in resumed.epochs] == [round(e.loss, 5) for e in whole.epochs]
    a = torch.load(tmp_path / "whole" / training.EXPORT, weights_only=True)["state"]
    b = torch.load(tmp_path / "cut" / training.EXPORT, weights_only=True)["state"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    with pytest.raises(ValueError, match="another run"):
        training.train(data[:-6], tmp_path / "cut", CONFIG)


def test_hard_negative_batches_hold_neighbouring_identities(tmp_path: Path) -> None:
    data = samples(make_dataset(tmp_path / "data", individuals=5, photos=4))
    config = training.TrainConfig(image_size=64, epochs=2, batch_size=8, hard_negatives=True, device="cpu")
    history = training.train(data, tmp_path / "run", config)
    assert len(history.epochs) == 2
    sampler = training.NeighbourBatches([0, 0, 1, 1, 2, 2, 3, 3], batch_size=4, per_class=2, seed=0)
    sampler.update(torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])))
    for batch in sampler:
        labels = {[0, 0, 1, 1, 2, 2, 3, 3][i] for i in batch}
        assert labels in ({0, 1}, {2, 3})  # an identity with its nearest neighbour


def test_the_exported_model_embeds_like_any_version(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", individuals=3, photos=3)
    config = training.TrainConfig(image_size=64, epochs=1, batch_size=4, device="cpu")
    training.train(samples(items), tmp_path / "run-7", config)
    model = embedding.get_model(str(tmp_path / "run-7" / training.EXPORT))
    assert isinstance(model, embedding.FineTuned)
    assert model.key == "finetuned-mobilenetv2@run-7" and model.dim == 1280
    vectors = model.predict([crop(load_oriented(i.path)) for i in items[:2]])
    assert vectors.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_an_empty_test_set_scores_nothing_instead_of_failing(tmp_path: Path) -> None:
    from ml_service import evaluation

    report = evaluation.evaluate([], embedding.MobileNetV2ImageNet())
    assert report["results"] == {} and report["images"] == 0


def test_the_cache_holds_the_pixels_a_fresh_decode_gives(tmp_path: Path) -> None:
    paths = [i.path for i in make_dataset(tmp_path / "data", individuals=2, photos=3)]
    size = augment.cache_size(64)
    cache = augment.DecodedCache(tmp_path / "run", paths, size, threads=2)
    assert cache.array.shape == (6, size, size, 3) and cache.array.dtype == np.uint8
    for k, path in enumerate(paths):
        # Decoded afresh and resized another way (torch's antialiased bilinear): within a grey level or so.
        full = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float()
        fresh = torch.nn.functional.interpolate(full, size=(size, size), mode="bilinear", antialias=True)
        difference = (cache.batch([k])[0].permute(2, 0, 1).float() - fresh[0].round()).abs()
        assert difference.mean() < 0.5 and difference.max() <= 2
    # End to end at the network's input: the cached path without augmentation gives what the per-image path
    # gives, within the second resize's tolerance.
    plain = training.transforms(training.TrainConfig(image_size=64), train=False)
    before = torch.stack([plain(load_oriented(p)) for p in paths])
    device = augment.DeviceAugment(64, True, embedding.IMAGENET_MEAN, embedding.IMAGENET_STD)
    after = device(cache.batch(range(6)), torch.Generator(), train=False)
    std = torch.tensor(embedding.IMAGENET_STD).view(1, 3, 1, 1)
    assert after.shape == before.shape and ((after - before) * std).abs().mean() < 0.01

    built = cache.data_path.stat().st_mtime_ns
    again = augment.DecodedCache(tmp_path / "run", paths, size)
    assert again.data_path.stat().st_mtime_ns == built  # a resumed run reuses it
    other = augment.DecodedCache(tmp_path / "run", paths[:4], size)
    assert len(other) == 4  # other images: built again
    other.remove()
    assert not list((tmp_path / "run").iterdir())


def test_augmentation_on_the_device_is_deterministic_and_keeps_shapes_and_ranges() -> None:
    images = torch.randint(0, 256, (16, 74, 74, 3), generator=torch.Generator().manual_seed(0)).byte()
    kept = images.clone()
    device = augment.DeviceAugment(64, True, embedding.IMAGENET_MEAN, embedding.IMAGENET_STD)
    a = device(images, torch.Generator().manual_seed(1))
    b = device(images, torch.Generator().manual_seed(1))
    c = device(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(images, kept)  # the cached batch is not written to
    assert a.shape == (16, 3, 64, 64) and a.dtype == torch.float32
    assert a.is_contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(embedding.IMAGENET_MEAN).view(1, 3, 1, 1)
    pixels = a * torch.tensor(embedding.IMAGENET_STD).view(1, 3, 1, 1) + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5

    # With every other draw fixed at "no change", the geometry is the resize alone or its mirror image, and
    # never the mirror image when left and right are separate identities.
    fixed = dict(degrees=0.0, translate=0.0, scale=(1.0, 1.0), p_clahe=0.0, p_sharpen=0.0, p_jitter=0.0)
    mean_std = (embedding.IMAGENET_MEAN, embedding.IMAGENET_STD)
    flips_only = augment.DeviceAugment(64, True, *mean_std, **fixed)  # type: ignore[arg-type]
    plain = flips_only(images, torch.Generator(), train=False)
    out = flips_only(images, torch.Generator().manual_seed(3))
    mirrored = [torch.allclose(o, p.flip(-1), atol=1e-4) for o, p in zip(out, plain, strict=True)]
    same = [torch.allclose(o, p, atol=1e-4) for o, p in zip(out, plain, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True)) and any(mirrored) and any(same)
    sides_apart = augment.DeviceAugment(64, False, *mean_std, **fixed)  # type: ignore[arg-type]
    assert torch.allclose(sides_apart(images, torch.Generator().manual_seed(3)), plain, atol=1e-4)


def test_the_species_rows_weight_each_viewpoint_by_its_queries() -> None:
    def m(queries: int, top1: float) -> dict[str, dict[str, float]]:
        return {"global": {"queries": queries, "top1": top1, "top5": 100.0, "top10": 100.0, "mAP": top1}}

    report = {"results": {"leopard/left": m(3, 100.0), "leopard/right": m(1, 0.0), "zebra/left": m(0, 0.0)}}
    items = [
        Item(Path("a"), "x", "leopard", "left"),
        Item(Path("b"), "x", "leopard", "right"),
        Item(Path("c"), "y", "zebra", "left"),
    ]
    rows = retrain.per_species(report, items)
    assert rows["leopard"] == {"queries": 4, "top1": 75.0, "top5": 100.0, "top10": 100.0, "mAP": 75.0}
    assert rows["zebra"]["queries"] == 0
    assert retrain.mean_top1(rows) == 75.0  # a species without queries does not count


def test_one_retraining_path_scores_the_start_and_the_trained_model_per_species(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "leopards", individuals=4, photos=6)
    items += [dataclasses.replace(i, species="zebra") for i in make_dataset(tmp_path / "zebras", 4, 6)]
    config = training.TrainConfig(image_size=64, epochs=2, batch_size=4, device="cpu")
    calls: dict[str, int] = {"split": 0, "epochs": 0, "trained": 0, "start": 0}

    def start_model() -> embedding.EmbeddingModel:
        calls["start"] += 1
        model = embedding.MobileNetV2ImageNet()
        model.preprocessing, model.runtime = embedding.Preprocessing(size=64), "torch"
        return model

    def run(stop_after: int | None) -> retrain.Result:
        return retrain.fine_tune(
            items,
            tmp_path / "run-3",
            config,
            start_model,
            split_seed=5,
            test_fraction=1.0,  # every testable individual: both species are in the test set
            on_split=lambda split: calls.__setitem__("split", calls["split"] + 1),
            log=lambda entry: calls.__setitem__("epochs", calls["epochs"] + 1),
            on_trained=lambda history: calls.__setitem__("trained", calls["trained"] + 1),
            stop_after=stop_after,
        )

    cut = run(stop_after=1)  # interrupted: nothing scored yet
    assert (
        not cut.complete and not cut.scores and calls == {"split": 1, "epochs": 1, "trained": 0, "start": 0}
    )
    result = run(stop_after=None)  # resumed
    assert result.complete and calls == {"split": 2, "epochs": 2, "trained": 1, "start": 1}
    assert result.split == cut.split == splits.paper_split(items, 1.0, seed=5)
    assert result.trained is not None and result.trained.key == "finetuned-mobilenetv2@run-3"
    unseen = result.split.unseen_test()
    for model in ("start", "trained"):
        test, unseen_scores = result.scores[model]["test"], result.scores[model]["unseen"]
        assert set(test) == {"leopard", "zebra"} == {i.species for i in result.split.test}
        assert set(unseen_scores) == {i.species for i in unseen}
        for species, row in test.items():
            # Every test photo is a query: its individual has test photos from other encounters.
            assert row["queries"] == sum(i.species == species for i in result.split.test)
            assert all(0 <= row[k] <= 100 for k in retrain.METRICS) and row["top1"] <= row["top5"]
        assert sum(r["queries"] for r in unseen_scores.values()) == len(unseen)
    expected = retrain.mean_top1(result.scores["trained"]["test"]) - retrain.mean_top1(
        result.scores["start"]["test"]
    )
    assert result.gain == pytest.approx(expected)
    table = retrain.format_table(result, {"start": "imagenet-mobilenetv2", "trained": "fine-tuned"})
    assert "zebra" in table and "fine-tuned" in table and "gain" in table

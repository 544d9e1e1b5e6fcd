"""Fine-tuning (ml_service.training, splits, finetune): the loss pieces, the paper's split rules, a short
deterministic run on small real-format images that resumes exactly after an interruption, and the exported
model embedding like any other version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from catalog import synthetic
from ml_service import embedding, splits, training
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


CONFIG = training.TrainConfig(image_size=64, epochs=3, batch_size=8, warmup_epochs=0.5, seed=7, device="cpu")


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
    resumed = training.train(data, tmp_path / "cut", CONFIG)
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

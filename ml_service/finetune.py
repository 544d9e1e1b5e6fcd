"""Fine-tune the re-identification model on a dataset folder and compare it with the starting model on the
same held-out split, outside the web app:

    python -m ml_service.finetune ../shared/datasets/dogfacenet-dev --out runs/dogs --epochs 10

The folder is laid out like ../shared/datasets/* (`images/<individual>/*.jpg` and `metadata.csv` with
path, individual_id[, viewpoint, species, encounter]). The split follows the MiewID paper
(ml_service.splits); training is ml_service.training (checkpointed every epoch: run the same command again
to resume). The report (terminal table and `report.json`) gives one-vs-all top-1/5/10 and mAP of the
starting model and the trained one on the test set, and on its individuals unseen in training.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from ml_service import evaluation, splits, training
from ml_service.embedding import EmbeddingModel, FineTuned, get_model

T = TypeVar("T")


def samples_of(items: Sequence[evaluation.Item], sides_apart: bool) -> list[training.Sample]:
    """Training identities: species/individual, and the side too when left and right are separate."""
    return [
        training.Sample(i.path, splits.identity(i) + (f"/{i.viewpoint}" if sides_apart else ""))
        for i in items
    ]


def score(model: EmbeddingModel, split: splits.Split, progress: evaluation.Progress) -> dict[str, Any]:
    """One-vs-all on the test set and on its unseen individuals; the global embedding alone."""
    out: dict[str, Any] = {}
    for name, items in (("test", split.test), ("unseen", split.unseen_test())):
        report = evaluation.evaluate(items, model, [], progress=progress)
        out[name] = {group: methods["global"] for group, methods in report["results"].items()}
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'model':<34}{'set':<8}{'group':<28}{'queries':>8}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP':>8}"
    ]
    for model, sets in results.items():
        for name, groups in sets.items():
            for group, m in groups.items():
                lines.append(
                    f"{model:<34}{name:<8}{group:<28}{m['queries']:>8}{m['top1']:>8.1f}{m['top5']:>8.1f}"
                    f"{m['top10']:>8.1f}{m['mAP']:>8.1f}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_service.finetune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, model.pt, report)")
    parser.add_argument("--base", default="imagenet-mobilenetv2", help="the starting model to compare with")
    parser.add_argument("--backbone", default="mobilenetv2", help="mobilenetv2 or a timm model name")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--hard-negatives", action="store_true")
    parser.add_argument("--sides-apart", action="store_true", help="left and right are separate identities")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="data loading processes")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit-individuals", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def bar(items: Iterable[T], label: str, total: int) -> Iterable[T]:
        return tqdm(items, desc=label, total=total, leave=False)

    items = evaluation.read_dataset(args.dataset, args.limit_individuals)
    split = splits.paper_split(items, args.test_fraction, args.seed)
    print(
        f"split: {len(split.train)} training photos of "
        f"{len({splits.identity(i) for i in split.train})} individuals; {len(split.test)} test photos, "
        f"{len(split.unseen)} test individuals unseen in training"
    )
    config = training.TrainConfig(
        backbone=args.backbone,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        hard_negatives=args.hard_negatives,
        flips=not args.sides_apart,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
    )
    began = time.monotonic()

    def log(e: training.EpochLog) -> None:
        print(
            f"epoch {e.epoch}/{config.epochs}  loss {e.loss:.3f}  lr {e.lr:.2e}  {e.seconds:.0f} s  "
            f"({e.images_per_second:.1f} images/s)",
            flush=True,
        )

    history = training.train(samples_of(split.train, args.sides_apart), args.out, config, log=log)
    trained_seconds = time.monotonic() - began
    results = {
        args.base: score(get_model(args.base), split, bar),
        "fine-tuned": score(FineTuned(args.out / training.EXPORT), split, bar),
    }
    print(table(results))
    report = {
        "dataset": str(args.dataset),
        "split": {
            "train": len(split.train),
            "test": len(split.test),
            "unseen_individuals": len(split.unseen),
        },
        "config": history.config,
        "epochs": [e.__dict__ for e in history.epochs],
        "training_seconds_this_call": round(trained_seconds, 1),
        "results": results,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"report: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

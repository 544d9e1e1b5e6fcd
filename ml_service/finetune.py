"""Fine-tune the re-identification model on a dataset folder and compare it with the starting model on the
same held-out split, per species, outside the web app:

    python -m ml_service.finetune ../shared/datasets/dogfacenet-dev --out runs/dogs --epochs 10

The folder is laid out like ../shared/datasets/* (`images/<individual>/*.jpg` and `metadata.csv` with
path, individual_id[, viewpoint, species, encounter]). This is the platform's retraining path
(ml_service.retrain): the MiewID paper's split, training (ml_service.training, checkpointed every epoch: run
the same command again to resume), then one-vs-all top-1/5/10 and mAP per species of the starting model and
the trained one on every test photo and on the test individuals unseen in training (a terminal table and
`report.json`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from ml_service import evaluation, retrain, splits, training
from ml_service.embedding import get_model

T = TypeVar("T")


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
    parser.add_argument(
        "--pipeline",
        choices=training.PIPELINES,
        default="cached",
        help="cached: decode once, augment on the device; decode: PIL/OpenCV per image and step",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="threads decoding the cache (cached); loader processes (decode)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit-individuals", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def bar(items: Iterable[T], label: str, total: int) -> Iterable[T]:
        return tqdm(items, desc=label, total=total, leave=False)

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
        pipeline=args.pipeline,
    )

    def split_made(split: splits.Split) -> None:
        print(
            f"split: {len(split.train)} training photos of "
            f"{len({splits.identity(i) for i in split.train})} individuals; {len(split.test)} test photos, "
            f"{len(split.unseen)} test individuals unseen in training"
        )
        counts = (retrain.species_counts(split.train), retrain.species_counts(split.test))
        for species in sorted(set(counts[0]) | set(counts[1])):
            t, s = (c.get(species, {}) for c in counts)
            print(
                f"  {species}: training {t.get('photos', 0)} photos of {t.get('individuals', 0)} "
                f"individuals; test {s.get('photos', 0)} photos of {s.get('individuals', 0)}"
            )

    def log(e: training.EpochLog) -> None:
        print(
            f"epoch {e.epoch}/{config.epochs}  loss {e.loss:.3f}  lr {e.lr:.2e}  {e.seconds:.0f} s  "
            f"({e.images_per_second:.1f} images/s)",
            flush=True,
        )

    began, seconds = time.monotonic(), {"training": 0.0}

    def trained(history: training.History) -> None:
        seconds["training"] = time.monotonic() - began
        print(f"trained in {seconds['training']:.0f} s this call; scoring both models on the split")

    result = retrain.fine_tune(
        evaluation.read_dataset(args.dataset, args.limit_individuals),
        args.out,
        config,
        lambda: get_model(args.base),
        split_seed=args.seed,
        test_fraction=args.test_fraction,
        sides_apart=args.sides_apart,
        on_split=split_made,
        log=log,
        on_trained=trained,
        progress=bar,
    )
    names = {"start": args.base, "trained": "fine-tuned"}
    print(retrain.format_table(result, names))
    report = {
        "dataset": str(args.dataset),
        "split": {
            "train": len(result.split.train),
            "test": len(result.split.test),
            "unseen_individuals": len(result.split.unseen),
            "species": {
                "train": retrain.species_counts(result.split.train),
                "test": retrain.species_counts(result.split.test),
            },
        },
        "config": result.history.config,
        "epochs": [e.__dict__ for e in result.history.epochs],
        "training_seconds_this_call": round(seconds["training"], 1),
        "results": {names[model]: sets for model, sets in result.scores.items()},
        "gain_top1": round(result.gain, 2),
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"report: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

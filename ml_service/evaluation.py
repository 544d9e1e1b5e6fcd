"""One-vs-all evaluation (the MiewID paper's protocol) of global, local and fused identification.

Every annotation is a query against all other annotations of its species and viewpoint (never itself);
queries whose individual has no other annotation are skipped. Reported per species: top-1/5/10 (is an
annotation of the right individual among the first k) and mAP over the full ranking.

Local matchers re-rank the global shortlist (top `shortlist` by cosine), as in the platform; the rest of the
ranking keeps the global order. Fusion is calibrated by two-fold cross-fitting over individuals: pairs of
queries from one half calibrate the ranking of queries from the other half, so no query scores itself
with a calibration it helped fit.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from ml_service.embedding import EmbeddingModel
from ml_service.fusion import FusionModel
from ml_service.imaging import crop, load_oriented
from ml_service.local_features import Features, LocalMatcher

T = TypeVar("T")


class Progress(Protocol):
    def __call__(self, items: Iterable[T], label: str, total: int) -> Iterable[T]: ...


def _no_progress(items: Iterable[T], label: str, total: int) -> Iterable[T]:
    return items


@dataclass(frozen=True)
class Item:
    path: Path
    individual: str
    species: str
    viewpoint: str
    encounter: str = ""  # photos of one encounter are not independent evidence (splits keep one)


def read_dataset(folder: Path, limit_individuals: int | None = None) -> list[Item]:
    """`images/<individual>/*.jpg` with `metadata.csv` (path, individual_id, viewpoint[, species])."""
    rows = list(csv.DictReader((folder / "metadata.csv").open(newline="")))
    items = [
        Item(
            folder / r["path"],
            r["individual_id"],
            r.get("species") or folder.name,
            r.get("viewpoint") or "unknown",
            r.get("encounter") or r["path"],  # without an encounter column each photo is its own
        )
        for r in rows
    ]
    if limit_individuals is not None:
        keep = sorted({i.individual for i in items})[:limit_individuals]
        items = [i for i in items if i.individual in set(keep)]
    return items


@dataclass
class Metrics:
    queries: int = 0
    hits: dict[int, int] = field(default_factory=lambda: {1: 0, 5: 0, 10: 0})
    ap_sum: float = 0.0

    def add(self, ranked_same: np.ndarray) -> None:
        """`ranked_same[r]` is True when the gallery item at rank r is the query's individual."""
        positives = np.flatnonzero(ranked_same)
        if len(positives) == 0:
            return
        self.queries += 1
        for k in self.hits:
            self.hits[k] += int(positives[0] < k)
        precision_at_hits = np.arange(1, len(positives) + 1) / (positives + 1)
        self.ap_sum += float(precision_at_hits.mean())

    def as_dict(self) -> dict[str, float]:
        n = max(self.queries, 1)
        return {
            "queries": self.queries,
            **{f"top{k}": 100 * v / n for k, v in self.hits.items()},
            "mAP": 100 * self.ap_sum / n,
        }


@dataclass
class Scores:
    """Per query: gallery indices in global order, and scores for the shortlisted part."""

    order: list[np.ndarray]
    cosine: list[np.ndarray]
    local: dict[str, list[np.ndarray]]


def evaluate(
    items: Sequence[Item],
    model: EmbeddingModel,
    matchers: Sequence[LocalMatcher] = (),
    shortlist: int = 20,
    progress: Progress = _no_progress,
) -> dict[str, object]:
    crops = [crop(load_oriented(i.path)) for i in progress(items, "loading", len(items))]
    if not crops:  # e.g. a small catalogue's split with no unseen individual: nothing to score
        return {
            "model": model.key,
            "matchers": [m.key for m in matchers],
            "shortlist": shortlist,
            "images": 0,
            "individuals": 0,
            "results": {},
        }
    embeddings = np.concatenate(
        [
            model.predict(crops[s : s + 64])
            for s in progress(range(0, len(crops), 64), f"embedding ({model.key})", (len(crops) + 63) // 64)
        ]
    )
    individuals = np.array([i.individual for i in items])
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[(item.species, item.viewpoint)].append(index)

    features: dict[str, list[Features]] = {
        m.key: [m.extract(c) for c in progress(crops, f"features ({m.key})", len(crops))] for m in matchers
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for (species, viewpoint), members in groups.items():
        idx = np.array(members)
        sims = embeddings[idx] @ embeddings[idx].T
        np.fill_diagonal(sims, -np.inf)
        orders = [np.argsort(-sims[q])[: len(idx) - 1] for q in range(len(idx))]
        scores = Scores(orders, [sims[q, orders[q][:shortlist]] for q in range(len(idx))], {})
        for m in matchers:
            fs = features[m.key]
            scores.local[m.key] = [
                np.array(
                    [m.match(fs[idx[q]], fs[idx[g]]).inliers for g in orders[q][:shortlist]], dtype=float
                )
                for q in progress(range(len(idx)), f"matching ({m.key}, {species})", len(idx))
            ]
        results[f"{species}/{viewpoint}"] = _rank_all(individuals[idx], scores, shortlist)
    return {
        "model": model.key,
        "matchers": [m.key for m in matchers],
        "shortlist": shortlist,
        "images": len(items),
        "individuals": len(set(individuals.tolist())),
        "results": results,
    }


def _rank_all(individuals: np.ndarray, scores: Scores, shortlist: int) -> dict[str, dict[str, float]]:
    n = len(individuals)
    methods: dict[str, Metrics] = defaultdict(Metrics)
    same = [individuals[scores.order[q]] == individuals[q] for q in range(n)]
    for q in range(n):
        methods["global"].add(same[q])
    for key, local in scores.local.items():
        for q in range(n):
            methods[f"local:{key}"].add(_rerank(same[q], local[q], scores.cosine[q]))
    for key in scores.local:
        probabilities = _cross_fitted_fusion(individuals, scores, key, shortlist)
        for q in range(n):
            methods[f"fused:{key}"].add(_rerank(same[q], probabilities[q], scores.cosine[q]))
    return {name: m.as_dict() for name, m in methods.items()}


def _rerank(same: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Re-order the shortlisted head by `primary` (ties by `secondary`); the tail keeps its order."""
    k = len(primary)
    head = np.lexsort((-secondary, -primary))
    return np.concatenate([same[:k][head], same[k:]])


def _cross_fitted_fusion(
    individuals: np.ndarray, scores: Scores, key: str, shortlist: int
) -> list[np.ndarray]:
    ids = sorted(set(individuals.tolist()))
    fold_of = {ind: i % 2 for i, ind in enumerate(ids)}
    folds = np.array([fold_of[i] for i in individuals])
    out: list[np.ndarray] = [np.zeros(0)] * len(individuals)
    for fold in (0, 1):
        train = np.flatnonzero(folds != fold)
        cos = np.concatenate([scores.cosine[q] for q in train])
        inl = np.concatenate([scores.local[key][q] for q in train])
        same = np.concatenate([individuals[scores.order[q][:shortlist]] == individuals[q] for q in train])
        model = FusionModel.fit({"cosine": cos, "inliers": inl}, same)
        for q in np.flatnonzero(folds == fold):
            out[q] = model.predict({"cosine": scores.cosine[q], "inliers": scores.local[key][q]})
    return out


def format_table(report: dict[str, object]) -> str:
    lines = [
        f"model {report['model']}  shortlist {report['shortlist']}  images {report['images']}  "
        f"individuals {report['individuals']}",
        f"{'species/viewpoint':<28}{'method':<32}{'queries':>8}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP':>8}",
    ]
    for group, methods in report["results"].items():  # type: ignore[attr-defined]
        for name, m in methods.items():
            lines.append(
                f"{group:<28}{name:<32}{m['queries']:>8}{m['top1']:>8.1f}{m['top5']:>8.1f}"
                f"{m['top10']:>8.1f}{m['mAP']:>8.1f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    import torch
    from tqdm import tqdm

    from ml_service.embedding import REGISTRY, get_model
    from ml_service.local_features import MATCHERS, get_matcher

    parser = argparse.ArgumentParser(
        prog="python -m ml_service.evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path, help="folder with metadata.csv and images/<individual>/")
    parser.add_argument(
        "--model",
        default="imagenet-mobilenetv2",
        help=f"one of {', '.join(sorted(REGISTRY))}, or the model.pt of a fine-tuning run",
    )
    parser.add_argument(
        "--matcher",
        action="append",
        choices=sorted(MATCHERS),
        default=None,
        help="local matcher(s) to evaluate (repeatable; default: sift)",
    )
    parser.add_argument("--shortlist", type=int, default=20)
    parser.add_argument("--limit-individuals", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--bf16", action="store_true", help="embed with bfloat16 autocast (about 2x faster on CPU)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def bar(items: Iterable[T], label: str, total: int) -> Iterable[T]:
        return tqdm(items, desc=label, total=total, leave=False)

    items = read_dataset(args.dataset, args.limit_individuals)
    matchers = [get_matcher(m) for m in (args.matcher or ["sift"])]
    model = get_model(args.model, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    report = evaluate(items, model, matchers, args.shortlist, progress=bar)
    report["dtype"] = str(model.dtype)
    report["dataset"] = str(args.dataset)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

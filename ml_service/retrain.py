"""Fine-tuning a model on identified photos and judging it, per species: the one code path of the platform's
retraining (identification/registry/retraining.py) and of `python -m ml_service.finetune`.

    photos -> the MiewID paper's split (ml_service.splits) -> training (ml_service.training, checkpointed and
    resumable) -> the starting and the trained model scored on the same split: every test photo, and the
    test individuals never seen in training -> one-vs-all top-1/5/10 and mAP per species.

The caller brings the photos, the run folder, the training settings and the starting model, and decides what
to do with the result (the platform promotes a better candidate; the command line prints the table).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ml_service import evaluation, splits, training
from ml_service.embedding import EmbeddingModel, FineTuned

T = TypeVar("T")
METRICS = ("top1", "top5", "top10", "mAP")
SETS = ("test", "unseen")
# The scores of one model on one set: {species: {queries, top1, top5, top10, mAP}}.
SpeciesScores = dict[str, dict[str, float]]


@dataclass
class Result:
    split: splits.Split
    history: training.History
    trained: EmbeddingModel | None = None  # None while epochs remain (an interrupted call)
    # {"start" | "trained": {"test" | "unseen": SpeciesScores}}
    scores: dict[str, dict[str, SpeciesScores]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.trained is not None

    @property
    def gain(self) -> float:
        """Top-1 points the trained model gains over the starting one on the test set, as the mean over
        species (each species counts once, however many photos it has)."""
        return mean_top1(self.scores["trained"]["test"]) - mean_top1(self.scores["start"]["test"])


def _quiet(items: Iterable[T], label: str, total: int) -> Iterable[T]:
    return items


def samples_of(items: Sequence[evaluation.Item], sides_apart: bool) -> list[training.Sample]:
    """Training identities: species/individual, and the side too when left and right are separate."""
    return [
        training.Sample(i.path, splits.identity(i) + (f"/{i.viewpoint}" if sides_apart else ""), i.species)
        for i in items
    ]


def species_counts(items: Sequence[evaluation.Item]) -> dict[str, dict[str, int]]:
    photos = Counter(i.species for i in items)
    individuals = Counter(species for species, _ in {(i.species, i.individual) for i in items})
    return {s: {"individuals": individuals[s], "photos": photos[s]} for s in sorted(photos)}


def per_species(report: Mapping[str, object], items: Sequence[evaluation.Item]) -> SpeciesScores:
    """The global embedding's metrics of an `evaluation.evaluate` report (per species and viewpoint) summed
    into one row per species, each group weighted by its queries."""
    species_of = {f"{i.species}/{i.viewpoint}": i.species for i in items}
    sums: dict[str, dict[str, float]] = {}
    for group, methods in report["results"].items():  # type: ignore[attr-defined]
        m = methods["global"]
        row = sums.setdefault(species_of[group], {"queries": 0, **dict.fromkeys(METRICS, 0.0)})
        row["queries"] += m["queries"]
        for name in METRICS:
            row[name] += m[name] * m["queries"]
    for row in sums.values():
        for name in METRICS:
            row[name] = row[name] / row["queries"] if row["queries"] else 0.0
    return dict(sorted(sums.items()))


def mean_top1(scores: SpeciesScores) -> float:
    values = [m["top1"] for m in scores.values() if m.get("queries")]
    return sum(values) / len(values) if values else 0.0


def score_sets(
    model: EmbeddingModel,
    sets: Mapping[str, Sequence[evaluation.Item]],
    progress: evaluation.Progress = _quiet,
) -> dict[str, SpeciesScores]:
    """One-vs-all within each named set of photos, per species."""
    return {
        name: per_species(evaluation.evaluate(items, model, [], progress=progress), items)
        for name, items in sets.items()
    }


def score(
    model: EmbeddingModel, split: splits.Split, progress: evaluation.Progress = _quiet
) -> dict[str, SpeciesScores]:
    """One-vs-all on every test photo and on the test individuals unseen in training, per species."""
    return score_sets(model, {"test": split.test, "unseen": split.unseen_test()}, progress)


def fine_tune(
    items: Sequence[evaluation.Item],
    out: Path,
    config: training.TrainConfig,
    starting_model: Callable[[], EmbeddingModel],
    *,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    sides_apart: bool = False,
    on_split: Callable[[splits.Split], None] = lambda split: None,
    log: Callable[[training.EpochLog], None] = lambda entry: None,
    on_trained: Callable[[training.History], None] = lambda history: None,
    stop_after: int | None = None,
    progress: evaluation.Progress = _quiet,
) -> Result:
    """Split `items` as the paper does, train into `out` (resuming what is there), and score the starting
    and the trained model on the same split, per species. `starting_model` is called once training is done
    (the platform compares with the version active then). Hooks: `on_split` once the split is known (before
    training), `log` after every checkpointed epoch, `on_trained` before scoring. With `stop_after`, a call
    that leaves epochs to train returns without scores (`Result.complete` is False); call again to resume.

    Raises ValueError when the split leaves nothing to train or test on."""
    split = splits.paper_split(items, test_fraction, split_seed)
    if not split.train or not split.test:
        raise ValueError(f"Too few identified individuals to train and test ({len(items)} photos).")
    on_split(split)
    history = training.train(
        samples_of(split.train, sides_apart), out, config, log=log, stop_after=stop_after
    )
    if len(history.epochs) < config.epochs:
        return Result(split, history)
    on_trained(history)
    trained = FineTuned(out / training.EXPORT)
    scores = {
        "start": score(starting_model(), split, progress),
        "trained": score(trained, split, progress),
    }
    return Result(split, history, trained, scores)


def format_table(result: Result, names: dict[str, str] | None = None) -> str:
    """Per species and set, the starting and the trained model's metrics (`names` relabels the models)."""
    names = names or {}
    lines = [
        f"{'model':<34}{'set':<8}{'species':<28}{'queries':>8}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP':>8}"
    ]
    for model, sets in result.scores.items():
        for name, by_species in sets.items():
            for species, m in by_species.items():
                lines.append(
                    f"{names.get(model, model):<34}{name:<8}{species:<28}{m['queries']:>8.0f}"
                    f"{m['top1']:>8.1f}{m['top5']:>8.1f}{m['top10']:>8.1f}{m['mAP']:>8.1f}"
                )
    if result.scores:
        lines.append(f"gain (mean top-1 over species, test): {result.gain:+.1f} points")
    return "\n".join(lines)

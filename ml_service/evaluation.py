"""One-vs-all evaluation (the MiewID paper's protocol) of global, local and fused identification.

Every annotation is a query against all other annotations of its species and viewpoint (never itself);
queries whose individual has no other annotation are skipped. Reported per species: top-1/5/10 (is an
annotation of the right individual among the first k) and mAP over the full ranking, twice: against all
gallery photos, and against photos of other encounters only (the metadata's `encounter` column; photos of one
encounter are no evidence of a re-sighting, and the platform never shows them). Without an encounter column
every photo is its own encounter and the two are equal.

Local matchers re-rank the global shortlist (top `shortlist` by cosine), as in the platform; the rest of the
ranking keeps the global order. Fusion is calibrated by two-fold cross-fitting over individuals: pairs of
queries from one half calibrate the ranking of queries from the other half, so no query scores itself
with a calibration it helped fit. The calibration is the platform's (ml_service.fusion.FusionModel.fit with
its queries), which cross-validates over the same two folds whether the fused ranking beats the global one
(top-1) and ranks by the global score otherwise. The "fused" row ranks as the platform would: the choice its
calibration makes on all the species' pairs (reported per species with its two figures), applied with the
cross-fitted calibrations, so its top-1 is the better of the two. "fused-nested" lets each half's
calibration choose by itself (the choice, too, blind to the scored individuals); "always-fused" is fusion
unchecked.

Open set, as a curator meets it: a seeded share of each species' individuals (`--open-set`, default 20 %) is
left out of the gallery (other encounters only); their photos should be called "probably new" (no candidate
reaches P 0.5, fusion.probably_new) and the others should not. Per confidence band the first candidate's
observed precision (share right) on those queries, with the cross-fitted calibration.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ml_service.embedding import EmbeddingModel
from ml_service.fusion import FUSED, GLOBAL, Band, FusionModel, aggregate, fold_of_individuals, probably_new
from ml_service.imaging import crop, load_oriented
from ml_service.local_features import Features, LocalMatcher

T = TypeVar("T")

ALL, OTHER_ENCOUNTERS = "all gallery photos", "other encounters only"


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
    encounter: str = ""  # photos of one encounter are not independent evidence (splits keep one); "": its own


def read_dataset(folder: Path, limit_individuals: int | None = None) -> list[Item]:
    """`images/<individual>/*.jpg` with `metadata.csv` (path, individual_id, viewpoint[, species,
    encounter])."""
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


LocalScore = Callable[[int, int], float]  # (query, gallery item) -> verified local matches


def evaluate(
    items: Sequence[Item],
    model: EmbeddingModel,
    matchers: Sequence[LocalMatcher] = (),
    shortlist: int = 20,
    progress: Progress = _no_progress,
    open_set: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
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
    features: dict[str, list[Features]] = {
        m.key: [m.extract(c) for c in progress(crops, f"features ({m.key})", len(crops))] for m in matchers
    }

    def scorer(m: LocalMatcher) -> LocalScore:
        fs = features[m.key]
        return lambda q, g: float(m.match(fs[q], fs[g]).inliers)

    report = evaluate_embeddings(
        items, embeddings, {m.key: scorer(m) for m in matchers}, shortlist, progress, open_set, seed
    )
    return {"model": model.key, **report}


def evaluate_embeddings(
    items: Sequence[Item],
    embeddings: np.ndarray,
    local: Mapping[str, LocalScore] | None = None,
    shortlist: int = 20,
    progress: Progress = _no_progress,
    open_set: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """The protocol on given L2-normalised embeddings (one row per item) and local scorers (indices into
    `items`), so it can be checked on constructed cases with known answers."""
    local = dict(local or {})
    individuals = np.array([i.individual for i in items])
    encounters = np.array([i.encounter or f"\0{n}" for n, i in enumerate(items)])
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[(item.species, item.viewpoint)].append(index)
    results: dict[str, dict[str, dict[str, float]]] = {}
    other_results: dict[str, dict[str, dict[str, float]]] = {}
    choice: dict[str, dict[str, Any]] = {}
    open_results: dict[str, dict[str, dict[str, Any]]] = {}
    for (species, viewpoint), members in groups.items():
        name = f"{species}/{viewpoint}"
        idx = np.array(members)
        group = _Group(individuals[idx], encounters[idx], embeddings[idx] @ embeddings[idx].T)
        cache = _LocalCache(local, idx)
        everyone = _scores(group, group.all_others, shortlist, cache, progress, name)
        other = _scores(group, group.other_encounters, shortlist, cache, progress, name)
        choice[name] = _platform_choice(group.individuals, other, shortlist)
        rankings = {key: str(c.get("ranking", GLOBAL)) for key, c in choice[name]["matchers"].items()}
        results[name], _ = _rank_all(group.individuals, everyone, shortlist, rankings)
        other_results[name], models = _rank_all(group.individuals, other, shortlist, rankings)
        choice[name]["held_out"] = {  # what each half's calibration chose by itself (the nested row)
            method: [fitted[f].choice for f in sorted(fitted)]
            for method, fitted in models.items()
            if method.startswith("fused-nested:")
        }
        models = {m: fitted for m, fitted in models.items() if not m.startswith("fused-nested:")}
        absent = _left_out(group.individuals, open_set, seed)
        present = ~np.isin(group.individuals, sorted(absent))
        open_scores = _scores(group, group.present_only(present), shortlist, cache, progress, name)
        open_results[name] = open_set_figures(group.individuals, open_scores, models, shortlist)
        open_results[name]["_left_out"] = {"individuals": len(absent), "of": len(set(group.individuals))}
    return {
        "matchers": list(local),
        "shortlist": shortlist,
        "images": len(items),
        "individuals": len(set(individuals.tolist())),
        "results": results,
        "results_other_encounters": other_results,
        "encounters": {
            "column": len(set(encounters.tolist())) < len(items),
            "note": "photos of the query's own encounter skipped"
            if len(set(encounters.tolist())) < len(items)
            else "no encounter column: every photo is its own encounter, so 'other encounters only' "
            "equals 'all gallery photos'",
        },
        "choice": choice,
        "open_set": {"share": open_set, "seed": seed, "results": open_results},
    }


@dataclass
class _Group:
    """One species/viewpoint: its items' individuals, encounters and cosine similarities."""

    individuals: np.ndarray
    encounters: np.ndarray
    sims: np.ndarray

    def all_others(self, q: int) -> np.ndarray:
        mask = np.ones(len(self.individuals), dtype=bool)
        mask[q] = False
        return mask

    def other_encounters(self, q: int) -> np.ndarray:
        return np.asarray(self.encounters != self.encounters[q])

    def present_only(self, present: np.ndarray) -> Callable[[int], np.ndarray]:
        """Other encounters of the individuals still in the gallery (the open set)."""
        return lambda q: self.other_encounters(q) & present


class _LocalCache:
    """Local scores of (query, gallery) pairs, each matched once whatever the protocols ask."""

    def __init__(self, local: Mapping[str, LocalScore], idx: np.ndarray) -> None:
        self.local, self.idx = local, idx
        self.done: dict[str, dict[tuple[int, int], float]] = {key: {} for key in local}

    def scores(self, key: str, q: int, gallery: np.ndarray) -> np.ndarray:
        done, score = self.done[key], self.local[key]
        for g in gallery:
            if (q, int(g)) not in done:
                done[(q, int(g))] = score(int(self.idx[q]), int(self.idx[g]))
        return np.array([done[(q, int(g))] for g in gallery], dtype=float)


def _scores(
    group: _Group,
    gallery_of: Callable[[int], np.ndarray],
    shortlist: int,
    cache: _LocalCache,
    progress: Progress,
    name: str,
) -> Scores:
    n = len(group.individuals)
    order = []
    for q in range(n):
        gallery = np.flatnonzero(gallery_of(q))
        order.append(gallery[np.argsort(-group.sims[q, gallery], kind="stable")])
    scores = Scores(order, [group.sims[q, order[q][:shortlist]] for q in range(n)], {})
    for key in cache.local:
        scores.local[key] = [
            cache.scores(key, q, order[q][:shortlist])
            for q in progress(range(n), f"matching ({key}, {name})", n)
        ]
    return scores


def _rank_all(
    individuals: np.ndarray, scores: Scores, shortlist: int, rankings: Mapping[str, str]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, FusionModel]]]:
    """The metrics per method, and the cross-fitted calibrations (per method, per fold) that ranked them.

    "fused:<matcher>" ranks as the platform would for the species: the ranking its calibration chose on all
    pairs (`rankings`, cross-validated over the same two folds), with the calibrations fitted on the other
    half. "fused-nested" lets each half's calibration choose by itself, so the choice too is made without
    the scored individuals; "always-fused" is fusion unchecked."""
    n = len(individuals)
    methods: dict[str, Metrics] = defaultdict(Metrics)
    same = [individuals[scores.order[q]] == individuals[q] for q in range(n)]
    for q in range(n):
        methods["global"].add(same[q])
    for key, local in scores.local.items():
        for q in range(n):
            methods[f"local:{key}"].add(_rerank(same[q], local[q], scores.cosine[q]))
    models: dict[str, dict[int, FusionModel]] = {}
    global_models = _cross_fitted(individuals, scores, None, shortlist)
    if global_models is not None:
        models["global"] = global_models
    for key in scores.local:
        fitted = _cross_fitted(individuals, scores, key, shortlist)
        if fitted is None:
            continue
        platform = {f: replace(m, ranking=rankings.get(key, GLOBAL)) for f, m in fitted.items()}
        models[f"fused:{key}"], models[f"fused-nested:{key}"] = platform, fitted
        fold = _fold_of_queries(individuals)
        for q in range(n):
            pair_scores = _pair_scores(scores, key, q)
            for method, probabilities in (
                (f"fused:{key}", platform[fold[q]].predict(pair_scores)),
                (f"fused-nested:{key}", fitted[fold[q]].predict(pair_scores)),
                (f"always-fused:{key}", fitted[fold[q]].fused_probability(pair_scores)),
            ):
                methods[method].add(_rerank(same[q], probabilities, scores.cosine[q]))
    return {name: m.as_dict() for name, m in methods.items()}, models


def _rerank(same: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Re-order the shortlisted head by `primary` (ties by `secondary`); the tail keeps its order."""
    k = len(primary)
    head = np.lexsort((-secondary, -primary))
    return np.concatenate([same[:k][head], same[k:]])


def _fold_of_queries(individuals: np.ndarray) -> np.ndarray:
    fold_of = fold_of_individuals(individuals)
    return np.array([fold_of[str(i)] for i in individuals])


def _pair_scores(scores: Scores, key: str | None, q: int) -> dict[str, np.ndarray]:
    out = {"cosine": scores.cosine[q]}
    if key is not None:
        out["inliers"] = scores.local[key][q]
    return out


def _pairs(
    individuals: np.ndarray, scores: Scores, key: str | None, shortlist: int, queries: Iterable[int]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The (query, shortlisted gallery item) pairs of `queries`: scores, same individual, query, and the
    query's individual."""
    qs = [q for q in queries if len(scores.order[q])]
    parts = [_pair_scores(scores, key, q) for q in qs]
    kinds = ["cosine"] + ([] if key is None else ["inliers"])
    pair_scores = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in kinds}
    same = (
        np.concatenate([individuals[scores.order[q][:shortlist]] == individuals[q] for q in qs])
        if qs
        else np.zeros(0, dtype=bool)
    )
    query = np.concatenate([np.full(len(scores.cosine[q]), q) for q in qs]) if qs else np.zeros(0, int)
    return pair_scores, same, query, individuals[query]


def _cross_fitted(
    individuals: np.ndarray, scores: Scores, key: str | None, shortlist: int
) -> dict[int, FusionModel] | None:
    """Per fold, the platform's calibration fitted on the pairs of the other fold's queries (None where a
    fold has too few pairs of both kinds). `key` None: the global score alone."""
    fold = _fold_of_queries(individuals)
    models = {}
    for f in sorted(set(fold.tolist())):
        pair_scores, same, query, owner = _pairs(
            individuals, scores, key, shortlist, np.flatnonzero(fold != f)
        )
        try:
            models[f] = FusionModel.fit(pair_scores, same, queries=query, individuals=owner)
        except ValueError:
            return None
    return models


def _platform_choice(individuals: np.ndarray, scores: Scores, shortlist: int) -> dict[str, Any]:
    """The ranking and matcher the platform would use for this species, fitted (like its refit) on the
    pairs of all queries, other encounters only."""
    per_matcher: dict[str, dict[str, object]] = {}
    for key in scores.local:
        pair_scores, same, query, owner = _pairs(individuals, scores, key, shortlist, range(len(individuals)))
        try:
            per_matcher[key] = FusionModel.fit(pair_scores, same, queries=query, individuals=owner).choice
        except ValueError:
            per_matcher[key] = {"ranking": GLOBAL, "reason": "too few pairs of both kinds to fit"}
    fused = {k: c for k, c in per_matcher.items() if c.get("ranking") == FUSED}
    if fused:
        best = max(fused, key=lambda k: float(fused[k]["fused_top1"]))  # type: ignore[arg-type]
        return {
            "ranking": f"{FUSED}:{best}",
            "matcher": best,
            "why": f"{best}: {fused[best]['reason']} (id_method hybrid)",
            "matchers": per_matcher,
        }
    why = (
        "no local matcher evaluated"
        if not per_matcher
        else "fusion did not beat the global ranking on held-out individuals; local evidence is only shown "
        "(id_method global skips local matching)"
    )
    return {"ranking": GLOBAL, "matcher": "", "why": why, "matchers": per_matcher}


def _left_out(individuals: np.ndarray, share: float, seed: int) -> set[str]:
    ids = sorted({str(i) for i in individuals})
    k = round(share * len(ids))
    if k <= 0:
        return set()
    picked = np.random.default_rng(seed).choice(len(ids), size=min(k, len(ids)), replace=False)
    return {ids[i] for i in picked}


def open_set_figures(
    individuals: np.ndarray, scores: Scores, models: Mapping[str, Mapping[int, FusionModel]], shortlist: int
) -> dict[str, dict[str, Any]]:
    """Per method: how often a query whose individual is not in the gallery is called probably new, how
    often one that is in it is, and per band the first candidate's precision (queries of both kinds)."""
    fold = _fold_of_queries(individuals)
    out: dict[str, dict[str, Any]] = {}
    for method, fitted in models.items():
        key = None if method == "global" else method.split(":", 1)[1]
        counts = {
            "new_queries": 0,
            "called_new": 0,
            "present_queries": 0,
            "wrongly_new": 0,
            "present_top1": 0,
        }
        bands = {b.value: {"queries": 0, "right": 0} for b in Band}
        for q in range(len(individuals)):
            order = scores.order[q]
            if len(order) == 0:
                continue
            head = order[:shortlist]
            probabilities = fitted[fold[q]].predict(_pair_scores(scores, key, q))
            candidates = aggregate([str(g) for g in head], [str(i) for i in individuals[head]], probabilities)
            new = not bool((individuals[order] == individuals[q]).any())
            verdict = probably_new(candidates)
            right = bool(candidates) and candidates[0].individual == str(individuals[q])
            if new:
                counts["new_queries"] += 1
                counts["called_new"] += int(verdict)
            else:
                counts["present_queries"] += 1
                counts["wrongly_new"] += int(verdict)
                counts["present_top1"] += int(right)
            if candidates:
                bands[candidates[0].band.value]["queries"] += 1
                bands[candidates[0].band.value]["right"] += int(right)
        out[method] = {
            **counts,
            "new_rate": _percent(counts["called_new"], counts["new_queries"]),
            "false_new_rate": _percent(counts["wrongly_new"], counts["present_queries"]),
            "present_top1_rate": _percent(counts["present_top1"], counts["present_queries"]),
            "bands": {b: {**c, "precision": _percent(c["right"], c["queries"])} for b, c in bands.items()},
        }
    return out


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _fmt(value: object, width: int = 8) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


def format_table(report: Mapping[str, Any]) -> str:
    """The report as text: the one-vs-all table (all gallery photos | other encounters only), the ranking
    and matcher each species would get, the open set, and the precision per band."""
    names = [n for methods in report["results"].values() for n in methods]
    groups = list(report["results"])
    gw = max([len("species/viewpoint"), *map(len, groups)]) + 2
    mw = max([len("method"), *map(len, names)]) + 2
    lines = [
        f"model {report['model']}  shortlist {report['shortlist']}  images {report['images']}  "
        f"individuals {report['individuals']}",
    ]
    other = report.get("results_other_encounters", {})
    metric_head = f"{'queries':>8}{'top-1':>7}{'top-5':>7}{'top-10':>7}{'mAP':>7}"
    lines.append(f"{'':<{gw + mw}}{ALL:<36}  {OTHER_ENCOUNTERS}")
    lines.append(f"{'species/viewpoint':<{gw}}{'method':<{mw}}{metric_head}  {metric_head}")
    for group, methods in report["results"].items():
        for name, m in methods.items():
            row = f"{group:<{gw}}{name:<{mw}}{_metric_cells(m)}"
            if name in other.get(group, {}):
                row += f"  {_metric_cells(other[group][name])}"
            lines.append(row)
    if "encounters" in report:
        lines.append(f"encounters: {report['encounters']['note']}")
    if report.get("choice"):
        lines += [
            "",
            "ranking and matcher the platform would use: its calibration fitted on all pairs of the species "
            "(other encounters), top-1 cross-validated over individuals (2 folds)",
            f"{'species/viewpoint':<{gw}}{'matcher':<{mw}}{'ranking':<9}{'global':>8}{'fused':>8}"
            f"{'queries':>8}  why",
        ]
        for group, c in report["choice"].items():
            for key, m in c["matchers"].items():
                lines.append(
                    f"{group:<{gw}}{key:<{mw}}{m.get('ranking', ''):<9}{_fmt(m.get('global_top1'))}"
                    f"{_fmt(m.get('fused_top1'))}{m.get('queries', 0):>8}  {m.get('reason', '')}"
                )
            for method, halves in c.get("held_out", {}).items():
                if method.startswith("fused-nested:"):
                    chosen = "; ".join(
                        f"{h.get('ranking')} (fused {_fmt(h.get('fused_top1'), 0)}, "
                        f"global {_fmt(h.get('global_top1'), 0)})"
                        for h in halves
                    )
                    lines.append(f"{'':<{gw}}  {method}: each half's calibration chose {chosen}")
            lines.append(f"{'':<{gw}}  => {c['ranking']}, matcher {c['matcher'] or 'none'}: {c['why']}")
    open_set = report.get("open_set")
    if open_set and open_set["results"]:
        lines += [
            "",
            f"open set: {100 * open_set['share']:.0f} % of individuals (seed {open_set['seed']}) left out of "
            "the gallery (other encounters only); 'new' = no candidate reaches P 0.5",
            f"{'species/viewpoint':<{gw}}{'method':<{mw}}{'left out':>9}{'new q.':>8}{'called new %':>14}"
            f"{'present q.':>12}{'wrongly new %':>15}{'present top-1':>15}",
        ]
        for group, methods in open_set["results"].items():
            left = methods.get("_left_out", {})
            for name, m in methods.items():
                if name.startswith("_"):
                    continue
                lines.append(
                    f"{group:<{gw}}{name:<{mw}}{left.get('individuals', 0):>4}/{left.get('of', 0):<4}"
                    f"{m['new_queries']:>8}{_fmt(m['new_rate'], 14)}{m['present_queries']:>12}"
                    f"{_fmt(m['false_new_rate'], 15)}{_fmt(m['present_top1_rate'], 15)}"
                )
        lines += [
            "",
            "per band: the first candidate's precision (% right) and queries, on the open-set queries, "
            "calibration cross-fitted over individuals",
            f"{'species/viewpoint':<{gw}}{'method':<{mw}}" + "".join(f"{b.value:>18}" for b in Band),
        ]
        for group, methods in open_set["results"].items():
            for name, m in methods.items():
                if name.startswith("_"):
                    continue
                cells = "".join(
                    f"{_fmt(c['precision'], 0).strip() + ' % of ' + str(c['queries']):>18}"
                    for c in (m["bands"][b.value] for b in Band)
                )
                lines.append(f"{group:<{gw}}{name:<{mw}}{cells}")
    return "\n".join(lines)


def _metric_cells(m: Mapping[str, float]) -> str:
    return f"{m['queries']:>8}{m['top1']:>7.1f}{m['top5']:>7.1f}{m['top10']:>7.1f}{m['mAP']:>7.1f}"


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
    parser.add_argument(
        "--open-set",
        type=float,
        default=0.2,
        help="share of each species' individuals left out of the gallery for the open-set figures "
        "(default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="which individuals the open set leaves out")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--bf16", action="store_true", help="embed with bfloat16 autocast (about 2x faster on CPU)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.open_set < 1:
        parser.error("--open-set is a share: at least 0 and below 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    def bar(items: Iterable[T], label: str, total: int) -> Iterable[T]:
        return tqdm(items, desc=label, total=total, leave=False)

    items = read_dataset(args.dataset, args.limit_individuals)
    matchers = [get_matcher(m) for m in (args.matcher or ["sift"])]
    model = get_model(args.model, bf16=args.bf16)
    report = evaluate(
        items, model, matchers, args.shortlist, progress=bar, open_set=args.open_set, seed=args.seed
    )
    report["dtype"] = "bfloat16" if model.bf16 else "float32"
    report["dataset"] = str(args.dataset)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

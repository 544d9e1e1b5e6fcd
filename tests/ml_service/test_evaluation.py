"""The evaluation protocol on constructed cases with known answers (no images, no Django): open-set verdicts,
per-band precision, the query's own encounter left out, and the fused row as the platform ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml_service import evaluation, fusion
from ml_service.evaluation import Item


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def separable(individuals: int = 10, photos: int = 4) -> tuple[list[Item], np.ndarray]:
    """Each individual its own direction; photos differ by a tiny private component: same individual cosine
    about 0.998, different 0."""
    items, vectors = [], []
    dim = individuals + individuals * photos
    for i in range(individuals):
        for k in range(photos):
            items.append(Item(Path(f"{i}/{k}.jpg"), f"ind{i:02d}", "cat", "face"))
            v = np.zeros(dim)
            v[i] = 1.0
            v[individuals + photos * i + k] = 0.05 + 0.002 * k
            vectors.append(unit(v))
    return items, np.array(vectors)


def test_open_set_counts_and_band_precision_on_a_separable_case() -> None:
    """2 of 10 individuals (20 %) are left out: their 8 photos have no mate in the gallery and every one is
    called new; the 32 others find their individual first with P near 1 (Excellent, all right)."""
    items, vectors = separable()
    report = evaluation.evaluate_embeddings(items, vectors, shortlist=20, open_set=0.2, seed=3)
    figures = report["open_set"]["results"]["cat/face"]
    assert figures["_left_out"] == {"individuals": 2, "of": 10}
    g = figures["global"]
    assert (g["new_queries"], g["called_new"], g["new_rate"]) == (8, 8, 100.0)
    assert (g["present_queries"], g["wrongly_new"], g["false_new_rate"]) == (32, 0, 0.0)
    assert g["present_top1_rate"] == 100.0
    assert g["bands"]["excellent"] == {"queries": 32, "right": 32, "precision": 100.0}
    assert g["bands"]["uncertain"] == {"queries": 8, "right": 0, "precision": 0.0}
    assert g["bands"]["good"]["queries"] == g["bands"]["fair"]["queries"] == 0
    # Another seed leaves other individuals out; no open set leaves nobody out.
    other = evaluation.evaluate_embeddings(items, vectors, open_set=0.2, seed=4)["open_set"]["results"]
    assert other["cat/face"]["global"]["new_queries"] == 8
    closed = evaluation.evaluate_embeddings(items, vectors, open_set=0.0)["open_set"]["results"]["cat/face"]
    assert closed["global"]["new_queries"] == 0 and closed["global"]["present_queries"] == 40
    assert "open set: 20 % of individuals" in evaluation.format_table({"model": "m", **report})


def test_open_set_figures_count_each_band_with_a_known_calibration() -> None:
    """With a fixed calibration (P = sigmoid(20 cos - 10)) every first candidate's band is known. Items 4 (c)
    and 5 (d) are the left-out individuals: the galleries hold items 0-3 only."""
    cosine = fusion.ScoreCalibrator("cosine", "logistic", slope=20.0, intercept=-10.0)
    model = fusion.FusionModel({"cosine": cosine}, {"cosine": 1.0}, 0.0, ranking=fusion.GLOBAL)
    individuals = np.array(["a", "a", "b", "b", "c", "d"])
    galleries = {  # query: (gallery order, cosines of the shortlist) -> first candidate, P, band, verdict
        0: ([1, 2], [0.85, 0.10]),  # a: a, 0.999, excellent, right
        1: ([2, 0], [0.60, 0.55]),  # a: b, 0.881, good, wrong
        2: ([3, 0], [0.53, 0.10]),  # b: b, 0.646, fair, right
        3: ([2, 1], [0.40, 0.30]),  # b: b, 0.119, uncertain, right but called new
        4: ([0, 2], [0.90, 0.20]),  # c (absent): a, 1.000, excellent, wrong, not called new
        5: ([3, 1], [0.45, 0.20]),  # d (absent): b, 0.269, uncertain, wrong, called new
    }
    scores = evaluation.Scores(
        [np.array(galleries[q][0]) for q in range(6)], [np.array(galleries[q][1]) for q in range(6)], {}
    )
    figures = evaluation.open_set_figures(individuals, scores, {"global": {0: model, 1: model}}, shortlist=2)
    g = figures["global"]
    assert (g["new_queries"], g["called_new"], g["new_rate"]) == (2, 1, 50.0)
    assert (g["present_queries"], g["wrongly_new"], g["false_new_rate"]) == (4, 1, 25.0)
    assert (g["present_top1"], g["present_top1_rate"]) == (3, 75.0)
    assert g["bands"] == {
        "excellent": {"queries": 2, "right": 1, "precision": 50.0},
        "good": {"queries": 1, "right": 0, "precision": 0.0},
        "fair": {"queries": 1, "right": 1, "precision": 100.0},
        "uncertain": {"queries": 2, "right": 1, "precision": 50.0},
    }


def encounters_case(with_column: bool) -> tuple[list[Item], np.ndarray]:
    """4 individuals, 2 encounters each, 2 photos per encounter. Photos of one encounter are near twins
    (cosine 0.999); another encounter of the same individual is at 0.17 (0.18 without the shared place);
    encounter 0 of individuals 0 and 1 share a place (a strong background, cosine 0.31 between them). So the
    twin finds every query's individual first, but against other encounters only the 4 photos taken at the
    shared place find the wrong individual first."""
    items, vectors = [], []
    dim = 4 + 8 + 16 + 1
    for i in range(4):
        for e in range(2):
            for k in range(2):
                v = np.zeros(dim)
                v[i] = 1.0
                v[4 + 2 * i + e] = 2.0
                v[12 + 4 * i + 2 * e + k] = 0.1
                if e == 0 and i in (0, 1):
                    v[-1] = 1.5
                encounter = f"enc{i}-{e}" if with_column else ""
                items.append(Item(Path(f"{i}/{e}-{k}.jpg"), f"ind{i}", "leopard", "left", encounter))
                vectors.append(unit(v))
    return items, np.array(vectors)


def test_photos_of_the_query_s_own_encounter_are_left_out_of_the_gallery() -> None:
    items, vectors = encounters_case(with_column=True)
    report = evaluation.evaluate_embeddings(items, vectors, open_set=0.0)
    everyone = report["results"]["leopard/left"]["global"]
    others = report["results_other_encounters"]["leopard/left"]["global"]
    assert everyone["queries"] == others["queries"] == 16
    assert everyone["top1"] == 100.0 and others["top1"] == 75.0
    assert others["mAP"] < everyone["mAP"]
    assert report["encounters"]["column"] and "own encounter skipped" in report["encounters"]["note"]
    table = evaluation.format_table({"model": "m", **report})
    assert "all gallery photos" in table and "other encounters only" in table


def test_without_an_encounter_column_both_numbers_are_equal_and_the_report_says_so(tmp_path: Path) -> None:
    items, vectors = encounters_case(with_column=False)
    report = evaluation.evaluate_embeddings(items, vectors, open_set=0.0)
    assert report["results"] == report["results_other_encounters"]
    assert report["results"]["leopard/left"]["global"]["top1"] == 100.0
    assert not report["encounters"]["column"] and "equals" in report["encounters"]["note"]
    # read_dataset takes the column when there is one, and makes each photo its own encounter otherwise.
    (tmp_path / "metadata.csv").write_text(
        "path,individual_id,viewpoint,encounter\nimages/a/1.jpg,a,left,e1\nimages/a/2.jpg,a,left,\n"
    )
    read = evaluation.read_dataset(tmp_path)
    assert [i.encounter for i in read] == ["e1", "images/a/2.jpg"]


def twins(seed: int = 1) -> tuple[list[Item], np.ndarray]:
    """12 individuals in 6 pairs of look-alikes: the global embedding mostly, not always, tells the twins
    apart (top-1 87.5); verified local matches always do."""
    rng = np.random.default_rng(seed)
    items, vectors = [], []
    for i in range(12):
        for k in range(4):
            items.append(Item(Path(f"{i}/{k}.jpg"), f"ind{i:02d}", "cat", "face"))
            v = np.zeros(80)
            v[i // 2], v[6 + i], v[20 + 4 * i + k] = 1.0, 0.2, 0.2 + 0.4 * rng.random()
            vectors.append(unit(v))
    return items, np.array(vectors)


def test_the_evaluation_s_fused_row_is_the_platform_s_ranking() -> None:
    """Where local evidence tells look-alikes apart, the calibration chooses the fused ranking and the fused
    row is better than the global one; where it points at the wrong individual, the calibration gives it no
    say and the fused row is the global one. The choice's cross-validated figures are the evaluation's own
    (the same two folds)."""
    items, vectors = twins()

    def telling(q: int, g: int) -> float:
        return 30.0 if items[q].individual == items[g].individual else 2.0

    report = evaluation.evaluate_embeddings(items, vectors, {"tell": telling}, shortlist=10)
    rows, choice = report["results"]["cat/face"], report["choice"]["cat/face"]
    assert choice["ranking"] == "fused:tell" and choice["matcher"] == "tell"
    assert rows["global"]["top1"] == 87.5 and rows["fused:tell"]["top1"] == 100.0
    assert choice["matchers"]["tell"]["global_top1"] == rows["global"]["top1"]
    assert choice["matchers"]["tell"]["fused_top1"] == rows["always-fused:tell"]["top1"]
    assert "fused-nested:tell" in rows and "fused:tell" in report["open_set"]["results"]["cat/face"]

    items, vectors = separable(individuals=8, photos=3)
    wrong = {i.individual: f"ind{(int(i.individual[3:]) + 1) % 8:02d}" for i in items}

    def misleading(q: int, g: int) -> float:
        return 40.0 if items[g].individual == wrong[items[q].individual] else 1.0

    report = evaluation.evaluate_embeddings(items, vectors, {"liar": misleading}, shortlist=10)
    rows = report["results"]["cat/face"]
    assert rows["fused:liar"] == rows["global"] and rows["global"]["top1"] == 100.0
    assert report["choice"]["cat/face"]["ranking"] == "global"
    assert report["choice"]["cat/face"]["matchers"]["liar"]["ranking"] == "global"
    assert all(
        h["ranking"] == "global" for h in report["choice"]["cat/face"]["held_out"]["fused-nested:liar"]
    )

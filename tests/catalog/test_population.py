"""Population views: abundance estimators against hand-computed values, the Program MARK export against the
format's rules, and the pages built from curated identifications."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from catalog import population, selectors, services
from tests.conftest import Catalogue, World, add_photo

# Two sessions: 10 animals caught in the first, 12 in the second, 5 of those already marked.
TWO_SESSIONS = [[1, 1]] * 5 + [[1, 0]] * 5 + [[0, 1]] * 7


def test_two_session_estimators_match_hand_computed_values() -> None:
    lincoln, chapman = population.estimate(TWO_SESSIONS)
    # Lincoln-Petersen: 10 * 12 / 5 = 24; variance 10*12*5*7 / 5^3 = 33.6.
    assert lincoln.method == "Lincoln-Petersen"
    assert lincoln.abundance == pytest.approx(24.0)
    assert lincoln.se == pytest.approx(33.6**0.5)
    assert lincoln.observed == 17
    # Chapman: 11 * 13 / 6 - 1 = 22.8333; variance 11*13*5*7 / (6^2 * 7) = 5005 / 252 = 19.8611.
    assert chapman.abundance == pytest.approx(22.8333, abs=1e-4)
    assert chapman.se == pytest.approx((5005 / 252) ** 0.5)
    # Chao's log-normal interval: f0 = 5.8333, C = exp(1.96 * sqrt(ln(1 + 19.8611 / 5.8333^2))) = 3.7770,
    # so 17 + 5.8333 / 3.7770 = 18.544 and 17 + 5.8333 * 3.7770 = 39.033 (worked on a calculator).
    assert chapman.ci_low == pytest.approx(18.544, abs=2e-3)
    assert chapman.ci_high == pytest.approx(39.033, abs=2e-2)
    assert chapman.note  # 5 recaptures: the small-sample warning is shown


def test_lincoln_petersen_without_recaptures_is_undefined_but_chapman_is_not() -> None:
    lincoln, chapman = population.estimate([[1, 0], [1, 0], [0, 1]])
    assert lincoln.abundance == float("inf") and "No recaptures" in lincoln.note
    assert chapman.abundance == pytest.approx(3 * 2 / 1 - 1)


def test_every_animal_recaptured_gives_exactly_the_animals_seen() -> None:
    lincoln, chapman = population.estimate([[1, 1]] * 4)
    assert lincoln.abundance == chapman.abundance == 4
    assert (chapman.ci_low, chapman.ci_high) == (4, 4)


def test_schnabel_matches_hand_computed_value() -> None:
    histories = [
        [1, 0, 1, 0],  # A
        [1, 1, 0, 0],  # B
        [0, 1, 0, 1],  # C
        [0, 0, 1, 0],  # D
        [1, 0, 0, 1],  # E
        [0, 1, 0, 0],  # F
    ]
    # Session: C_t, M_t (marked before), R_t -> 3,0,0 | 3,3,1 | 2,5,1 | 2,6,2
    # sum C*M = 0 + 9 + 10 + 12 = 31, sum R = 4, N = 31 / (4 + 1) = 6.2
    assert population.schnabel_terms(population.capture_matrix(histories)) == (31, 4)
    (schnabel,) = population.estimate(histories)
    assert schnabel.method == "Schnabel"
    assert schnabel.abundance == pytest.approx(6.2)
    # Poisson limits of R = 4 from chi-square tables: chi2(0.025, 8) / 2 = 1.0899, chi2(0.975, 10) / 2 =
    # 10.2416; N from 31 / (10.2416 + 1) = 2.76 (below the 6 animals seen: 6) to 31 / (1.0899 + 1) = 14.83.
    assert schnabel.ci_low == 6
    assert schnabel.ci_high == pytest.approx(14.83, abs=0.01)
    assert schnabel.observed == 6


def test_capture_histories_are_validated() -> None:
    with pytest.raises(ValueError, match="two sessions"):
        population.estimate([[1], [0]])
    with pytest.raises(ValueError, match="0 and 1"):
        population.estimate([[1, 2]])


MARK_LINE = re.compile(r"^(/\*(?:(?!\*/).)*\*/ )?([01]+) (\d+);$")


def test_mark_export_follows_the_format_rules() -> None:
    text = population.mark_inp(
        [("A-1", [1, 0, 1]), ("evil */ label", [0, 1, 1]), ("never", [0, 0, 0])], title="Big Cats"
    )
    lines = text.strip().splitlines()
    assert lines[0] == "/* Big Cats */"
    histories = [MARK_LINE.match(line) for line in lines[1:]]
    assert all(histories), lines
    # One history per caught individual, all the same length, frequency 1, no all-zero rows.
    assert [m.group(2) for m in histories if m] == ["101", "011"]
    assert {m.group(3) for m in histories if m} == {"1"}
    assert "never" not in text
    assert text.endswith(";\n")
    with pytest.raises(ValueError, match="one length"):
        population.mark_inp([("a", [1, 0]), ("b", [1, 0, 1])])


def _sessions(days: list[int]) -> list[selectors.Session]:
    start = dt.date(2026, 1, 1)
    return selectors.sessions_between([start + dt.timedelta(days=d) for d in days])


def test_capture_histories_discovery_and_counts_come_from_curated_identifications(
    catalogue: Catalogue,
) -> None:
    world = catalogue.world
    curator = world.users["curator"]
    # The catalogue photographs individual i on days i, 10 + i and 20 + i. An unidentified photo counts as
    # effort but identifies no one.
    add_photo(world, 9, seed=77, day=21)
    histories = selectors.capture_histories(curator, world.project, world.leopard, _sessions([0, 10, 20, 30]))
    by_code = {i.code: h for i, h in histories}
    assert by_code == {"CAT-0": [1, 1, 1], "CAT-1": [1, 1, 1], "CAT-2": [1, 1, 1], "CAT-3": [1, 1, 1]}
    # Only days 0-4: CAT-0..3 in session 1 (days 0-1: CAT-0, CAT-1; days 2-4: CAT-2, CAT-3).
    early = selectors.capture_histories(curator, world.project, world.leopard, _sessions([0, 2, 5]))
    assert {i.code: h for i, h in early} == {
        "CAT-0": [1, 0],
        "CAT-1": [1, 0],
        "CAT-2": [0, 1],
        "CAT-3": [0, 1],
    }
    curve = selectors.discovery_curve(curator, world.project, world.leopard)
    # The world's own leopard sighting (L1, 2026-03-01) comes last; 12 catalogue sightings + 1 unidentified.
    assert curve[:4] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert curve[-1] == (14, 5)
    assert max(n for n, _ in curve) == 14
    assert selectors.sightings_per_individual(curator, world.project, world.leopard) == [1, 3, 3, 3, 3]


def test_split_sessions_cover_the_days_inclusively() -> None:
    sessions = selectors.split_sessions(dt.date(2026, 1, 1), dt.date(2026, 1, 4), 2)
    assert [s.label for s in sessions] == ["2026-01-01 to 2026-01-02", "2026-01-03 to 2026-01-04"]


def test_population_page_shows_estimates_plots_and_export(catalogue: Catalogue) -> None:
    world = catalogue.world
    client = Client()
    client.force_login(world.users["curator"])
    url = f"/projects/{world.project.pk}/population/"
    html = client.get(
        url, {"species": str(world.leopard.pk), "boundaries": "2026-01-01, 2026-01-11, 2026-01-31"}
    )
    assert html.status_code == 200
    page = html.content.decode()
    assert "Chapman" in page and "Lincoln-Petersen" in page
    assert page.count('<figure class="card plot"') == 2 and page.count("<svg") >= 2
    assert "mark.inp" in page
    export = client.get(
        f"{url}mark.inp",
        {"species": str(world.leopard.pk), "boundaries": "2026-01-01, 2026-01-11, 2026-01-31"},
    )
    assert export.status_code == 200
    assert "attachment" in export["Content-Disposition"]
    rows = [line for line in export.content.decode().splitlines() if MARK_LINE.match(line)]
    assert sorted(MARK_LINE.match(r).group(2) for r in rows) == ["11", "11", "11", "11"]  # type: ignore[union-attr]
    bad = client.get(url, {"species": str(world.leopard.pk), "boundaries": "2026-02-01, 2026-01-01"})
    assert bad.status_code == 200 and "increasing dates" in bad.content.decode()


def test_viewer_sees_the_page_but_may_not_export(catalogue: Catalogue) -> None:
    client = Client()
    client.force_login(catalogue.world.users["viewer"])
    url = f"/projects/{catalogue.project.pk}/population/"
    page = client.get(url).content.decode()
    assert "Schnabel" in page or "Chapman" in page
    assert "mark.inp" not in page
    assert client.get(f"{url}mark.inp").status_code == 403


def test_individual_page_has_encounter_history_and_map_points(world: World) -> None:
    client = Client()
    client.force_login(world.users["viewer"])
    page = client.get(f"/individuals/{world.leopard_individual.pk}/").content.decode()
    assert 'id="map"' in page and "Encounter history" in page
    # Leopards are sensitive: a viewer's map point is blurred to 0.1 degree, never the exact den.
    assert "-1.23456" not in page
    assert '"lat": -1.2' in page
    services.sighting_update(actor=world.users["curator"], sighting=world.sighting, changes={"notes": "x"})
    curator = Client()
    curator.force_login(world.users["curator"])
    assert "-1.23456" in curator.get(f"/individuals/{world.leopard_individual.pk}/").content.decode()


def test_invalid_sessions_show_the_error_and_the_default_results(catalogue) -> None:
    world = catalogue.world
    client = Client()
    client.force_login(world.users["curator"])
    url = f"/projects/{world.project.pk}/population/"
    html = client.get(url, {"species": str(world.leopard.pk), "sessions": "1"}).content.decode()
    assert "Ensure this value is greater than or equal to 2" in html
    assert "two equal sessions over every identified day" in html and "Chapman" in html
    bad = client.get(
        url, {"species": str(world.leopard.pk), "boundaries": "2026-01-01, sometime"}
    ).content.decode()
    assert "sometime is none" in bad and "Invalid isoformat" not in bad and "Chapman" in bad

"""Running one match job: claim it (identification.matching.jobs), embed the query, search the catalogue
(pgvector, filtered by what the photo's project may be matched against and by the job's filters), re-rank the
shortlist with local features, calibrate and fuse the scores into P(same individual) per candidate
individual, store the ranking with the final state, and tell who is waiting for it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog.models import Annotation
from identification.matching import jobs, loaded, search, store
from identification.matching.calibration import fusion_model_for
from identification.matching.crops import Crops, PhotoUnreadable, matching_viewpoint, to_photo_pixels
from identification.models import JobState, MatchCandidate, MatchJob
from ml_service import fusion, local_features
from resight import notifications, webhooks
from resight.models import WebhookEvent
from resight.permissions import Action, users_granted

logger = logging.getLogger(__name__)


def run(job_id: int) -> None:
    """Run one job to the end. Safe to call any number of times, from any number of workers."""
    if not jobs.claim(job_id):
        return  # done, failed, or in another live worker's hands
    try:
        job = MatchJob.objects.select_related("space", "annotation__media_asset").get(pk=job_id)
        ranking = _rank(job, step=lambda state: jobs.advance(job_id, state))
        with transaction.atomic():
            _replace_candidates(job, ranking)
            now = timezone.now()
            jobs.advance(job_id, JobState.DONE, finished_at=now, ranked_at=now, **ranking.fields)
        logger.info("match job %s done: %s candidates", job_id, len(ranking.candidates))
    except jobs.ClaimLost:
        logger.warning("match job %s was taken over by another worker", job_id)
        return
    except PhotoUnreadable as exc:
        jobs.fail(job_id, f"The photo could not be read: {exc}")
    except Exception as exc:  # the job records every failure; the worker itself carries on
        logger.exception("match job %s failed", job_id)
        jobs.fail(job_id, f"{type(exc).__name__}: {exc}")
    announce(job_id)


CONFIDENT_BANDS = (fusion.Band.EXCELLENT.value, fusion.Band.GOOD.value)


def announce(job_id: int) -> None:
    """Tell the requester the job finished, and the species' curators when a confident match of an
    unidentified animal awaits review (without naming an individual they may not be allowed to see)."""
    job = MatchJob.objects.select_related(
        "annotation__media_asset__project", "annotation__species", "annotation__sighting", "requested_by"
    ).get(pk=job_id)
    top = job.candidates.select_related("individual").order_by("rank").first()
    annotation = job.annotation
    # What the photo is, in words a notification list can be read by: species, day and project (no place:
    # it may be one the recipient sees blurred).
    photo = (
        f"{annotation.species.common_name} of {annotation.sighting.observed_at:%Y-%m-%d} "
        f"({annotation.media_asset.project.name})"
    )
    if job.state == JobState.FAILED:
        text = f"Matching the {photo} failed: {job.error[:200]}"
    elif top is not None:
        text = f"{photo}: #1 {top.individual.code}, {top.band} (P={top.probability:.2f})."
    else:
        text = f"{photo}: no identified individual to compare with yet."
    text = text[0].upper() + text[1:]
    requester = [job.requested_by] if job.requested_by else []
    notifications.notify(requester, kind="job_finished", text=text, url=reverse("match-job", args=[job.pk]))
    webhooks.emit(
        WebhookEvent.JOB_FINISHED,
        annotation.media_asset.project,
        {
            "match_job": {
                "id": job.pk,
                "state": job.state,
                "annotation": annotation.pk,
                "species": annotation.species.scientific_name,
                "first_candidate": None
                if top is None
                else {"individual": top.individual.code, "band": top.band, "probability": top.probability},
                "url": reverse("match-job", args=[job.pk]),
            }
        },
    )
    if (
        job.state == JobState.DONE
        and top is not None
        and top.band in CONFIDENT_BANDS
        and not annotation.individual_id
    ):
        project_id = annotation.media_asset.project_id
        curators = [
            u for u in users_granted(project_id, Action.CURATE, annotation.species_id) if u not in requester
        ]
        notifications.notify(
            curators,
            kind="review_waiting",
            text=f"A {top.band} match ({annotation.species.common_name}, P={top.probability:.2f}) "
            "awaits review.",
            url=f"{reverse('review-next')}?project={project_id}",
        )


def rerank(job_id: int) -> bool:
    """Rank a finished, undecided job's candidates again, with the catalogue as it is now (someone confirmed,
    created, merged or split an individual it could concern): the same steps, the query's vector and every
    local feature taken from the store. Outside the job's state machine: a done job stays done. Returns
    whether it was re-ranked (not when another worker is at it, or the photo was decided meanwhile)."""
    with transaction.atomic():
        job = (
            MatchJob.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("space", "annotation__media_asset")
            .filter(pk=job_id, state=JobState.DONE, annotation__individual__isnull=True)
            .first()
        )
        if job is None:
            return False
        ranking = _rank(job, step=lambda state: None)
        _replace_candidates(job, ranking)
        MatchJob.objects.filter(pk=job_id).update(ranked_at=timezone.now(), **ranking.fields)
    return True


@dataclass(frozen=True)
class Ranking:
    candidates: list[MatchCandidate]
    fields: dict[str, Any]  # the job's verdict fields that go with them


def _replace_candidates(job: MatchJob, ranking: Ranking) -> None:
    MatchCandidate.objects.filter(job=job).delete()
    MatchCandidate.objects.bulk_create(ranking.candidates)


def _rank(job: MatchJob, step: Callable[[JobState], None]) -> Ranking:
    query = job.annotation
    crops = Crops()  # the query's original is decoded once for its embedding and its features
    (query_vector,) = store.embed([query], job.space, crops=crops).values()
    # Every identified catalogue member in scope is embedded once, so the search compares with all of them.
    missing = (
        Annotation.objects.filter(
            species_id=query.species_id, media_asset__project_id__in=job.project_ids, individual__isnull=False
        )
        .exclude(embeddings__space=job.space)
        .select_related("media_asset")
    )
    store.embed(list(missing), job.space, skip_unreadable=True)
    step(JobState.SEARCHING)
    flt = _search_filter(job)
    neighbours = search.nearest(job.space, query_vector, flt, k=job.shortlist_size)
    report = _report(job, flt, neighbours)
    step(JobState.RERANKING)
    cosine = np.array([n.cosine for n in neighbours])
    scores: dict[str, np.ndarray] = {"cosine": cosine}
    inliers: np.ndarray | None = None
    tentative: np.ndarray | None = None
    evidence: dict[int, list[list[float]]] = {}
    if job.matcher and neighbours:
        matcher = loaded.local_matcher(job.matcher)
        mine = store.local_features_of(query, matcher, crops)
        gallery = Annotation.objects.select_related("media_asset").in_bulk(
            [n.annotation_id for n in neighbours]
        )
        theirs = {
            n.annotation_id: store.local_features_of(gallery[n.annotation_id], matcher) for n in neighbours
        }
        matches = [matcher.match(mine, theirs[n.annotation_id]) for n in neighbours]
        evidence = {
            n.annotation_id: _photo_pairs(
                query, mine.image_size, gallery[n.annotation_id], theirs[n.annotation_id].image_size, m
            )
            for n, m in zip(neighbours, matches, strict=True)
        }
        inliers = np.array([m.inliers for m in matches], dtype=float)
        tentative = np.array([m.matches for m in matches], dtype=float)
        scores["inliers"] = inliers
    model = fusion_model_for(query.species_id, job.space, job.matcher)
    probabilities = model.predict(scores) if neighbours else np.zeros(0)
    ranked = fusion.aggregate(
        [str(n.annotation_id) for n in neighbours], [str(n.individual_id) for n in neighbours], probabilities
    )
    position = {n.annotation_id: i for i, n in enumerate(neighbours)}
    rows = []
    for rank, c in enumerate(ranked, start=1):
        i = position[int(c.annotation)]
        rows.append(
            MatchCandidate(
                job=job,
                rank=rank,
                individual_id=int(c.individual),
                annotation_id=int(c.annotation),
                global_score=float(cosine[i]),
                probability=c.probability,
                band=c.band.value,
                local_score=None if inliers is None else float(inliers[i]),
                match_count=None if tentative is None else int(tentative[i]),
                model_key=job.space.key,
                matcher_key=job.matcher,
                keypoint_pairs=evidence.get(int(c.annotation), []),
            )
        )
    return Ranking(
        rows,
        {
            "probably_new": fusion.probably_new(ranked),
            "top_probability": ranked[0].probability if ranked else None,
            "loose_box": query.loose_box,
            "search_report": report,
        },
    )


MAX_DRAWN_PAIRS = 150


def _photo_pairs(
    query: Annotation,
    query_size: tuple[int, int],
    other: Annotation,
    other_size: tuple[int, int],
    match: local_features.Match,
) -> list[list[float]]:
    """The verified matches in both photos' pixels, as the review page draws them (at most 150)."""
    pairs = match.pairs[:MAX_DRAWN_PAIRS]
    if len(pairs) == 0:
        return []
    a = to_photo_pixels(query, pairs[:, :2], query_size)
    b = to_photo_pixels(other, pairs[:, 2:], other_size)
    return np.round(np.hstack([a, b]), 1).tolist()


def _report(job: MatchJob, flt: search.SearchFilter, neighbours: list[search.Neighbour]) -> dict[str, object]:
    """What the job searched, as its page explains it: the rules applied and how many catalogue photos
    each left out (search.census); and the cosine a photo must reach to enter its shortlist (-1 while the
    shortlist is not full), which tells which jobs a newly identified animal could change (freshness)."""
    rules: dict[str, object] = {}
    if flt.viewpoint:
        rules["viewpoint"] = flt.viewpoint
    if flt.body_part:
        rules["body_part"] = flt.body_part
    if flt.near is not None:
        rules["radius"] = flt.near[2]
    if flt.observed_between is not None:
        rules["days"] = (job.filters or {}).get("days")
    entry = neighbours[-1].cosine if len(neighbours) >= job.shortlist_size else -1.0
    return {**search.census(job.space, flt).as_json(), "rules": rules, "entry_cosine": entry}


def _search_filter(job: MatchJob) -> search.SearchFilter:
    query = job.annotation
    f = job.filters or {}
    viewpoint = matching_viewpoint(query)[0]
    between = None
    if f.get("days"):
        centre = query.sighting.observed_at
        span = dt.timedelta(days=float(f["days"]))
        between = (centre - span, centre + span)
    near, blurred = None, None
    if f.get("radius_km"):
        # Places are compared as precisely as the requester may know them, the query's and the
        # catalogue's alike (catalog.selectors.blurred_sightings).
        requester = job.requested_by or AnonymousUser()
        place = catalog_selectors.sighting_location(requester, query.sighting)
        if place.latitude is not None and place.longitude is not None:
            near = (place.latitude, place.longitude, float(f["radius_km"]))
            sql, params = catalog_selectors.blurred_sightings(requester).query.sql_with_params()
            blurred = (sql, tuple(params))
    return search.SearchFilter(
        species_id=query.species_id,
        project_ids=tuple(job.project_ids),
        exclude_annotation_ids=tuple(
            Annotation.objects.filter(sighting_id=query.sighting_id).values_list("pk", flat=True)
        ),  # the same encounter is no evidence of a re-sighting
        viewpoint=viewpoint if viewpoint != "unknown" and f.get("same_viewpoint", True) else None,
        body_part=(query.body_part or None) if f.get("same_body_part", True) else None,
        near=near,
        blurred_sightings=blurred,
        observed_between=between,
    )

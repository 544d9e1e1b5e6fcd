"""Writes to the catalog. Every write checks the permission policy and leaves an audit event.

Photos are inspected completely before anything is written; then the originals, renditions and rows are
stored in one transaction, and files written by a transaction that fails are removed again, so a rejected
upload leaves neither a row nor a file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from catalog import images, signals, validators
from catalog.models import (
    Annotation,
    Individual,
    IndividualStatus,
    MediaAsset,
    Sighting,
    Species,
    Viewpoint,
)
from resight import audit
from resight.models import Project
from resight.permissions import (
    Action,
    AnyUser,
    End,
    require,
    require_link,
    require_operator,
    require_project,
    user_or_none,
)


@dataclass(frozen=True)
class PhotoUpload:
    """A photo to add: its name as uploaded and a readable stream."""

    name: str
    stream: IO[bytes]


@dataclass
class _StoredFiles:
    names: list[str] = field(default_factory=list)


def _violated_constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


@contextlib.contextmanager
def _files_removed_on_failure() -> Iterator[_StoredFiles]:
    stored = _StoredFiles()
    try:
        yield stored
    except BaseException:
        for name in stored.names:
            default_storage.delete(name)
        raise


def check_photo(
    *, project: Project, name: str, stream: IO[bytes], seen: dict[str, str]
) -> images.InspectedImage:
    """One photo as every upload path checks it (form, API, bulk): within the byte and pixel limits, fully
    decodable, not the same as another photo of this upload (`seen`: sha256 -> name, updated here) and not
    already in the project. images.ImageRejected says why, in the words every path shows."""
    data = images.read_limited(stream, settings.RESIGHT_MAX_UPLOAD_BYTES)
    image = images.inspect(data, max_pixels=settings.RESIGHT_MAX_IMAGE_PIXELS)
    if image.sha256 in seen:
        raise images.ImageRejected(f"The same photo as {seen[image.sha256]} in this upload.")
    existing = MediaAsset.objects.filter(project=project, sha256=image.sha256).first()
    if existing is not None:
        raise images.ImageRejected(_already_in_project(existing))
    seen[image.sha256] = name
    return image


def _already_in_project(existing: MediaAsset) -> str:
    return f"Already in the project (photo {existing.pk}, uploaded as {existing.original_filename})."


def inspect_photos(*, project: Project, photos: Sequence[PhotoUpload]) -> list[images.InspectedImage]:
    """Check every photo (check_photo) before anything is stored.

    Raises ValidationError listing each bad file with its reason."""
    errors: list[str] = []
    inspected: list[images.InspectedImage] = []
    seen: dict[str, str] = {}
    for photo in photos:
        try:
            inspected.append(check_photo(project=project, name=photo.name, stream=photo.stream, seen=seen))
        except images.ImageRejected as exc:
            errors.append(f"{photo.name}: {exc}")
    if errors:
        raise ValidationError({"photos": errors})
    if not inspected:
        raise ValidationError({"photos": ["Add at least one photo."]})
    return inspected


def _store_asset(
    *,
    actor: AnyUser,
    project: Project,
    sighting: Sighting | None,
    name: str,
    image: images.InspectedImage,
    stored: _StoredFiles,
) -> MediaAsset:
    asset = MediaAsset(
        project=project,
        sighting=sighting,
        original_filename=name[:255],
        image_format=image.image_format,
        sha256=image.sha256,
        size_bytes=len(image.data),
        width=image.width,
        height=image.height,
        exif_taken_at=exif_time(image),
        exif_latitude=image.latitude,
        exif_longitude=image.longitude,
        uploaded_by=user_or_none(actor),
    )
    # The original first, exactly as uploaded; renditions are derived from it.
    asset.file.save(f"original.{image.extension}", ContentFile(image.data), save=False)
    stored.names.append(str(asset.file.name))
    preview = images.rendition(image.data, images.PREVIEW_MAX_SIDE)
    asset.preview.save(f"{image.sha256}-preview.jpg", ContentFile(preview), save=False)
    stored.names.append(str(asset.preview.name))
    thumbnail = images.rendition(image.data, images.THUMBNAIL_MAX_SIDE)
    asset.thumbnail.save(f"{image.sha256}-thumb.jpg", ContentFile(thumbnail), save=False)
    stored.names.append(str(asset.thumbnail.name))
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError as exc:
        # The same photo sent twice at once: both passed inspect_photos, the database keeps one. The
        # other gets the same answer as a photo sent after it (its files are removed by the caller).
        if _violated_constraint(exc) == "asset_unique_content_in_project":
            existing = MediaAsset.objects.get(project=project, sha256=image.sha256)
            raise ValidationError({"photos": [f"{name}: {_already_in_project(existing)}"]}) from exc
        raise
    audit.record(
        actor=actor,
        action="media_asset.upload",
        obj=asset,
        project_id=project.pk,
        changes={"sha256": image.sha256, "size_bytes": len(image.data), "filename": asset.original_filename},
    )
    transaction.on_commit(lambda: signals.media_asset_stored.send(sender=MediaAsset, media_asset=asset))
    return asset


def media_asset_create(
    *, actor: AnyUser, project: Project, photo: PhotoUpload, sighting: Sighting | None = None
) -> MediaAsset:
    require_project(actor, project, Action.CONTRIBUTE)
    if sighting is not None and sighting.project_id != project.pk:
        raise ValidationError({"sighting": ["The sighting belongs to another project."]})
    (image,) = inspect_photos(project=project, photos=[photo])
    with transaction.atomic(), _files_removed_on_failure() as stored:
        return _store_asset(
            actor=actor, project=project, sighting=sighting, name=photo.name, image=image, stored=stored
        )


@dataclass(frozen=True)
class SightingData:
    """A sighting's own values, as every path (form, API, bulk CSV) hands them to the services."""

    observed_at: dt.datetime | None = None  # None: the earliest EXIF time of the photos
    time_zone: str = "UTC"
    latitude: float | None = None
    longitude: float | None = None
    location_uncertainty_m: float | None = None
    location_name: str = ""
    observer: str = ""
    notes: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SightingData:
        """The sighting's fields out of a form's or serializer's cleaned data (other keys ignored)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["observed_at"] = self.observed_at.isoformat() if self.observed_at else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SightingData:
        when = data.get("observed_at")
        return dataclasses.replace(
            cls.from_mapping(data), observed_at=dt.datetime.fromisoformat(when) if when else None
        )


# The sighting's own fields, as forms and serializers list them (with the project and what they add).
SIGHTING_FIELDS = [f.name for f in dataclasses.fields(SightingData)]


def exif_time(image: images.InspectedImage) -> dt.datetime | None:
    """The photo's EXIF time, unless a wrong camera clock put it outside what a sighting may have."""
    taken = image.taken_at
    return taken if taken is not None and validators.is_plausible_time(taken) else None


def _with_exif_defaults(data: SightingData, inspected: Sequence[images.InspectedImage]) -> SightingData:
    """Fill the time and place the user left empty from the photos' EXIF."""
    observed_at, lat, lon = data.observed_at, data.latitude, data.longitude
    if observed_at is None:
        times = [t for t in map(exif_time, inspected) if t is not None]
        if not times:
            raise ValidationError(
                {"observed_at": ["Give the time of the sighting; the photos carry no usable camera time."]}
            )
        observed_at = min(times)
    if lat is None and lon is None:
        located = next((i for i in inspected if i.latitude is not None), None)
        if located is not None:
            lat, lon = located.latitude, located.longitude
    return dataclasses.replace(data, observed_at=observed_at, latitude=lat, longitude=lon)


def validated_sighting(sighting: Sighting) -> Sighting:
    """The sighting's values checked as every path writes them (form, API, bulk CSV): the model's
    validators (times, zones, coordinates, lengths, text) and a position given whole or not at all."""
    sighting.full_clean(exclude=["project", "created_by"])
    if (sighting.latitude is None) != (sighting.longitude is None):
        raise ValidationError({"longitude": ["Give both latitude and longitude, or neither."]})
    return sighting


def sighting_create(
    *,
    actor: AnyUser,
    project: Project,
    data: SightingData,
    photos: Sequence[PhotoUpload] = (),
    species: Species | None = None,
    viewpoint: str = Viewpoint.UNKNOWN,
    body_part: str = "",
    photos_are_crops: bool = False,
) -> Sighting:
    """A sighting with its photos. With `species`, each photo gets one whole-frame annotation of it: a
    tight one when `photos_are_crops`, else a loose one (its verdict says so) to be narrowed to the
    animal's box by a curator or a detector. (The New sighting page asks for the box instead.)"""
    require_project(actor, project, Action.CONTRIBUTE, species.pk if species else None)
    inspected = inspect_photos(project=project, photos=photos) if photos else []
    sighting = validated_sighting(
        Sighting(
            project=project,
            created_by=user_or_none(actor),
            **_with_exif_defaults(data, inspected).__dict__,
        )
    )
    if species is not None:
        check_annotation_vocabulary(species, viewpoint, body_part)
    with transaction.atomic(), _files_removed_on_failure() as stored:
        sighting.save()
        audit.record(
            actor=actor,
            action="sighting.create",
            obj=sighting,
            project_id=project.pk,
            changes=audit.diff({}, model_to_dict(sighting)),
        )
        for photo, image in zip(photos, inspected, strict=True):
            asset = _store_asset(
                actor=actor, project=project, sighting=sighting, name=photo.name, image=image, stored=stored
            )
            if species is not None:
                _annotation_save(
                    actor,
                    Annotation(
                        media_asset=asset,
                        sighting=sighting,
                        species=species,
                        x=0,
                        y=0,
                        width=asset.width,
                        height=asset.height,
                        viewpoint=viewpoint,
                        body_part=body_part,
                        cropped_photo=photos_are_crops,
                    ),
                )
    return sighting


def sighting_update(*, actor: AnyUser, sighting: Sighting, changes: dict[str, Any]) -> Sighting:
    require(actor, sighting, Action.CONTRIBUTE)
    with transaction.atomic():
        before = audit.stored_before(sighting)
        for name, value in changes.items():
            setattr(sighting, name, value)
        validated_sighting(sighting).save()
        audit.record(
            actor=actor,
            action="sighting.update",
            obj=sighting,
            project_id=sighting.project_id,
            changes=audit.diff(before, model_to_dict(sighting)),
        )
    return sighting


def check_annotation_vocabulary(species: Species, viewpoint: str, body_part: str) -> None:
    if species.viewpoints and viewpoint not in (*species.viewpoints, Viewpoint.UNKNOWN):
        raise ValidationError(
            {"viewpoint": [f"{species.common_name} takes the viewpoints {', '.join(species.viewpoints)}."]}
        )
    if species.body_parts and body_part and body_part not in species.body_parts:
        raise ValidationError(
            {"body_part": [f"{species.common_name} takes the body parts {', '.join(species.body_parts)}."]}
        )


def _annotation_save(actor: AnyUser, annotation: Annotation, *, match_now: bool = True) -> Annotation:
    asset = annotation.media_asset
    validators.validate_box(annotation.box, asset.width, asset.height)
    check_annotation_vocabulary(annotation.species, annotation.viewpoint, annotation.body_part)
    # The model's own rules (text lengths, no NUL, choices, ranges); relations are checked above and below.
    annotation.full_clean(
        exclude=["media_asset", "sighting", "species", "individual", "created_by", "mask"],
        validate_unique=False,
    )
    creating = annotation.pk is None
    before = {} if creating else audit.stored_before(annotation)
    if (
        before
        and annotation.mask
        and any(before.get(f) != getattr(annotation, f) for f in ("x", "y", "width", "height"))
    ):
        annotation.mask = None  # the mask belonged to the old box; it is recomputed for the new one
    individual = annotation.individual
    if individual is not None:
        if individual.species_id != annotation.species_id:
            raise ValidationError({"individual": ["The individual is of another species."]})
        if before.get("individual") != individual.pk:
            # Saying who an animal is, is a curator's decision on both ends: the photo's project and the
            # individual's, within one organisation.
            require_link(
                actor,
                Action.CURATE,
                End(asset.project_id, annotation.species_id),
                End(individual.project_id, individual.species_id),
            )
            # Lock the individual's row: a merge holding it finishes first, and a merged individual takes
            # no new photos (they would be stranded on it).
            status = (
                Individual.objects.select_for_update(of=("self",))
                .order_by()
                .values_list("status", flat=True)
                .get(pk=individual.pk)
            )
            if status == IndividualStatus.MERGED:
                raise ValidationError(
                    {"individual": [f"{individual.code} was merged into another individual."]}
                )
    if creating:
        annotation.created_by = user_or_none(actor)
    annotation.save()
    geometry = ("species", "x", "y", "width", "height", "viewpoint", "body_part", "mask", "cropped_photo")
    after = model_to_dict(annotation)
    changed = creating or any(before.get(f) != after.get(f) for f in geometry)
    identities = {before.get("individual"), after.get("individual")} - {
        None
    }  # the individuals it left/joined
    transaction.on_commit(
        lambda: signals.annotation_saved.send(
            sender=Annotation,
            annotation=annotation,
            created=creating,
            actor=actor,
            geometry_changed=changed,
            match_now=match_now,
            individuals_changed=sorted(identities)
            if before.get("individual") != after.get("individual")
            else [],
        )
    )
    audit.record(
        actor=actor,
        action="annotation.create" if creating else "annotation.update",
        obj=annotation,
        project_id=asset.project_id,
        changes=audit.diff(before, model_to_dict(annotation)),
    )
    return annotation


def annotation_create(
    *,
    actor: AnyUser,
    media_asset: MediaAsset,
    species: Species,
    box: tuple[int, int, int, int],
    viewpoint: str = Viewpoint.UNKNOWN,
    body_part: str = "",
    quality: int | None = None,
    individual: Individual | None = None,
    match_now: bool = True,
    cropped_photo: bool = False,
) -> Annotation:
    """One animal in a photo. A new unidentified annotation is matched at once unless `match_now` is False
    (bulk uploads match their whole batch when it is in)."""
    require_project(actor, media_asset.project, Action.CONTRIBUTE, species.pk)
    if media_asset.sighting_id is None:
        raise ValidationError({"media_asset": ["Attach the photo to a sighting before annotating it."]})
    x, y, w, h = box
    annotation = Annotation(
        media_asset=media_asset,
        sighting_id=media_asset.sighting_id,
        species=species,
        x=x,
        y=y,
        width=w,
        height=h,
        viewpoint=viewpoint,
        body_part=body_part,
        quality=quality,
        individual=individual,
        cropped_photo=cropped_photo,
    )
    with transaction.atomic():
        return _annotation_save(actor, annotation, match_now=match_now)


def annotation_update(*, actor: AnyUser, annotation: Annotation, changes: dict[str, Any]) -> Annotation:
    """Change an annotation's box, species, viewpoint... (contributors) or its identity (curators; a
    curate-only grantee may do the latter alone)."""
    identity_only = set(changes) <= {"individual"}
    require(actor, annotation, Action.CURATE if identity_only else Action.CONTRIBUTE)
    if "individual" in changes and changes["individual"] != annotation.individual:
        require(actor, annotation, Action.CURATE)  # also to unassign; assigning checks the individual too
    for name, value in changes.items():
        if name == "box":
            annotation.x, annotation.y, annotation.width, annotation.height = value
        else:
            setattr(annotation, name, value)
    with transaction.atomic():
        return _annotation_save(actor, annotation)


def individual_create(*, actor: AnyUser, project: Project, species: Species, **fields: Any) -> Individual:
    require_project(actor, project, Action.CURATE, species.pk)
    individual = Individual(project=project, species=species, **fields)
    return audit.save(actor=actor, obj=individual, action="individual.create")


CODE_SHAPE = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")


def next_individual_code(project: Project, species: Species) -> str:
    """A free catalogue code for a new individual, in the project's own pattern: the prefix and digits its
    codes of this species share most (MARA-L003 -> MARA-L004); for a species the project has no code of
    yet, the prefix its other codes share with the species' initials (MARA- -> MARA-C001); else the
    initials and a running number (C-0001)."""
    codes = list(Individual.objects.filter(project=project).values_list("code", "species_id"))
    shaped = [(m, sp) for code, sp in codes if (m := CODE_SHAPE.match(code))]
    own = Counter((m["prefix"], len(m["number"])) for m, sp in shaped if sp == species.pk)
    initials = "".join(w[0] for w in species.common_name.split()).upper() or "IND"
    if own:
        (prefix, width), _ = own.most_common(1)[0]
    else:
        others = [m["prefix"] for m, _ in shaped]
        # Character by character on purpose: codes are no paths.
        shared = os.path.commonprefix(others) if others else ""  # noqa: RUF071
        shared = shared[: max(shared.rfind("-"), shared.rfind("_")) + 1]  # up to a separator
        widths = Counter(len(m["number"]) for m, _ in shaped)
        prefix = f"{shared}{initials}" if shared else f"{initials}-"
        width = widths.most_common(1)[0][0] if shared else 4
    taken = {code for code, _ in codes}
    used = [int(m["number"]) for m, _ in shaped if m["prefix"] == prefix]
    n = max(used, default=0) + 1
    while f"{prefix}{n:0{width}d}" in taken:
        n += 1
    return f"{prefix}{n:0{width}d}"


def individual_update(*, actor: AnyUser, individual: Individual, changes: dict[str, Any]) -> Individual:
    require(actor, individual, Action.CURATE)
    return audit.save(actor=actor, obj=individual, action="individual.update", changes=changes)


# Identity changes (identification.curation.identities) move annotations between individuals and retire
# individuals through these two: the catalogue's rows are written here only. The caller has checked the
# policy for the whole change and holds the individuals' row locks.


def move_annotations(annotation_ids: list[int], *, source: Individual, target: Individual) -> None:
    """Give `target` the annotations of `source` named by `annotation_ids`, all of them or none."""
    moved = Annotation.objects.filter(pk__in=annotation_ids, individual=source).update(
        individual=target, updated_at=timezone.now()
    )
    if moved != len(annotation_ids):
        raise ValidationError(
            {
                "annotations": [
                    f"Some of these photos are no longer {source.code}'s (a later change moved them: "
                    "undo that first, or reload)."
                ]
            }
        )


def individual_set_merged(individual: Individual, *, into: Individual | None, status: str = "") -> None:
    """Mark `individual` merged into `into`, or (`into` None) no longer merged, back to `status`."""
    Individual.objects.filter(pk=individual.pk).update(
        status=IndividualStatus.MERGED if into is not None else status or IndividualStatus.ACTIVE,
        merged_into=into,
        updated_at=timezone.now(),
    )


def species_create(*, actor: AnyUser, **fields: Any) -> Species:
    # Species are shared by every project: the instance's operators edit them.
    require_operator(actor)
    return audit.save(actor=actor, obj=Species(**fields), action="species.create")


def species_update(*, actor: AnyUser, species: Species, changes: dict[str, Any]) -> Species:
    require_operator(actor)
    mirroring = species.canonical_viewpoint
    with transaction.atomic():
        audit.save(actor=actor, obj=species, action="species.update", changes=changes)
        if species.canonical_viewpoint != mirroring:
            # Crops of one side are mirrored now (or no longer): their vectors and features must be redone.
            transaction.on_commit(
                lambda: signals.matching_settings_changed.send(sender=Species, species=species)
            )
    return species


def media_asset_set_proposals(*, asset: MediaAsset, proposals: list[dict[str, Any]], source: str) -> None:
    """Store the animal boxes a detector (`source`, its version key) proposed for the photo (no user action,
    so no permission check)."""
    MediaAsset.objects.filter(pk=asset.pk).update(proposals=proposals, proposals_by=source)


def annotation_set_mask(*, annotation: Annotation, png: bytes, source: str) -> Annotation:
    """Store a segmentation mask computed by the system (no user action, so no permission check).

    Two workers may compute the mask of one annotation at once (its embedding and a match job): the row is
    locked, and the first mask stored is kept. A stored mask is never replaced, because another worker may
    have read its name and be about to open it; the loser's file is removed, so none is left behind. A mask
    computed for a box that has changed since is not kept either."""
    box = (annotation.x, annotation.y, annotation.width, annotation.height)
    annotation.mask.save(f"{annotation.pk}-{source.split('@')[0]}.png", ContentFile(png), save=False)
    new = str(annotation.mask.name)
    try:
        with transaction.atomic():
            locked = Annotation.objects.select_for_update(of=("self",)).filter(pk=annotation.pk)
            row = locked.values_list("mask", "x", "y", "width", "height").first()
            if row is None or row[0] or tuple(row[1:]) != box:
                # Deleted meanwhile, masked by another worker first, or redrawn: nothing is to name this file.
                default_storage.delete(new)
                annotation.mask.name = row[0] if row else None
                return annotation
            locked.update(mask=new)
            audit.record(
                actor=None,
                action="annotation.mask",
                obj=annotation,
                project_id=annotation.media_asset.project_id,
                changes={"source": source},
            )
    except BaseException:
        default_storage.delete(new)
        raise
    return annotation

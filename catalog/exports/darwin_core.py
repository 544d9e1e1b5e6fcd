"""A project's identified animals as a Darwin Core Archive, the format a GBIF IPT publishes: occurrence.txt
(one occurrence per identified animal per sighting, tab-separated), meta.xml (which column is which term)
and eml.xml (the dataset's metadata: title, creator, licence). Everything in it is what the exporting user
may see: a sensitive species' place is the blurred one, with its uncertainty widened and said in
dataGeneralizations."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from django.utils import timezone

from catalog import selectors
from catalog.models import Annotation, Sighting
from resight.models import LICENCE_URLS, Licence, Project
from resight.permissions import Action, AnyUser

DWC = "http://rs.tdwg.org/dwc/terms/"
DCTERMS = "http://purl.org/dc/terms/"
# Simple Darwin Core takes these from Dublin Core; every other term is Darwin Core's.
DUBLIN_CORE_TERMS = frozenset(
    [
        "type",
        "modified",
        "language",
        "license",
        "rightsHolder",
        "accessRights",
        "bibliographicCitation",
        "references",
    ]
)
TERM_LIST = Path(__file__).with_name("vendor") / "dwc_terms.csv"

# The occurrence core's columns, in order (occurrenceID first: it is the core's id).
COLUMNS = [
    "occurrenceID",
    "basisOfRecord",
    "type",
    "license",
    "rightsHolder",
    "institutionCode",
    "datasetName",
    "eventID",
    "eventDate",
    "recordedBy",
    "individualCount",
    "occurrenceStatus",
    "organismID",
    "organismName",
    "sex",
    "lifeStage",
    "locality",
    "decimalLatitude",
    "decimalLongitude",
    "geodeticDatum",
    "coordinateUncertaintyInMeters",
    "dataGeneralizations",
    "scientificName",
    "vernacularName",
    "kingdom",
    "taxonRank",
    "identificationVerificationStatus",
    "identificationRemarks",
    "modified",
]


def term_iri(name: str) -> str:
    return (DCTERMS if name in DUBLIN_CORE_TERMS else DWC) + name


@dataclass(frozen=True)
class Occurrence:
    """One identified animal on one sighting: the rows of one (sighting, individual)."""

    sighting: Sighting
    annotation: Annotation  # the first of the animal's photos in that sighting


def occurrences(user: AnyUser, project: Project) -> list[Occurrence]:
    """The project's identified animals the user may export, one per animal per sighting."""
    rows = (
        selectors.annotations_for(user, Action.EXPORT)
        .filter(sighting__project=project, individual__isnull=False)
        .select_related("sighting", "individual", "species")
        .order_by("sighting__observed_at", "sighting_id", "individual_id", "pk")
    )
    seen: set[tuple[int, int]] = set()
    found = []
    for annotation in rows:
        key = (annotation.sighting_id, annotation.individual_id or 0)
        if key not in seen:
            seen.add(key)
            found.append(Occurrence(annotation.sighting, annotation))
    return found


def record(user: AnyUser, project: Project, occurrence: Occurrence) -> dict[str, str]:
    sighting, annotation = occurrence.sighting, occurrence.annotation
    individual, species = annotation.individual, annotation.species
    assert individual is not None  # occurrences() keeps identified animals only
    where = selectors.sighting_location(user, sighting)
    prefix = f"{project.organization.slug}:{project.slug}"
    row = {
        "occurrenceID": f"{prefix}:occurrence:{sighting.pk}-{individual.pk}",
        # Photographs: a camera trap's (no observer named) or a person's.
        "basisOfRecord": "HumanObservation" if sighting.observer else "MachineObservation",
        "type": "StillImage",
        "license": LICENCE_URLS[Licence(project.licence)],
        "rightsHolder": project.holder,
        "institutionCode": project.organization.slug,
        "datasetName": project.name,
        "eventID": f"{prefix}:sighting:{sighting.pk}",
        "eventDate": _event_date(sighting),
        "recordedBy": sighting.observer,
        "individualCount": "1",
        "occurrenceStatus": "present",
        "organismID": f"{prefix}:individual:{individual.pk}",
        "organismName": individual.name or individual.code,
        "sex": "" if individual.sex == "unknown" else individual.sex,
        "lifeStage": "" if individual.life_stage == "unknown" else individual.life_stage,
        "locality": where.name,
        "decimalLatitude": _number(where.latitude),
        "decimalLongitude": _number(where.longitude),
        "geodeticDatum": "EPSG:4326" if where.latitude is not None else "",
        "coordinateUncertaintyInMeters": _number(where.uncertainty_m, digits=0),
        "dataGeneralizations": "Coordinates rounded to 0.1 degree and the place name withheld: sensitive "
        "species"
        if where.blurred
        else "",
        "scientificName": species.scientific_name,
        "vernacularName": species.common_name,
        "kingdom": "Animalia",
        "taxonRank": "species",
        # Only curators link a photo to an individual (the policy's two-ended writes), so every identity here
        # was confirmed by one.
        "identificationVerificationStatus": "verified",
        "identificationRemarks": f"Individual {individual.code} identified from photographs by a curator",
        "modified": _iso(annotation.updated_at),
    }
    return {k: _cell(v) for k, v in row.items()}


def archive(user: AnyUser, project: Project) -> bytes:
    """The Darwin Core Archive (a zip) of what `user` may export from `project`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        lines = ["\t".join(COLUMNS)]
        for occurrence in occurrences(user, project):
            row = record(user, project, occurrence)
            lines.append("\t".join(row[c] for c in COLUMNS))
        zf.writestr("occurrence.txt", "\n".join(lines) + "\n")
        zf.writestr("meta.xml", meta_xml())
        zf.writestr("eml.xml", eml_xml(project))
    return buffer.getvalue()


def meta_xml() -> str:
    root = ET.Element(
        "archive",
        {"xmlns": "http://rs.tdwg.org/dwc/text/", "metadata": "eml.xml"},
    )
    core = ET.SubElement(
        root,
        "core",
        {
            "encoding": "UTF-8",
            "fieldsTerminatedBy": "\\t",
            "linesTerminatedBy": "\\n",
            "fieldsEnclosedBy": "",
            "ignoreHeaderLines": "1",
            "rowType": DWC + "Occurrence",
        },
    )
    location = ET.SubElement(ET.SubElement(core, "files"), "location")
    location.text = "occurrence.txt"
    ET.SubElement(core, "id", {"index": "0"})
    for index, name in enumerate(COLUMNS):
        ET.SubElement(core, "field", {"index": str(index), "term": term_iri(name)})
    return _xml(root)


def eml_xml(project: Project) -> str:
    """EML 2.1.1, the dataset metadata a GBIF IPT reads: title, creator, contact, abstract, licence."""
    eml = "https://eml.ecoinformatics.org/eml-2.1.1"
    root = ET.Element(
        "eml:eml",
        {
            "xmlns:eml": eml,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "packageId": f"{project.organization.slug}:{project.slug}",
            "system": "resight",
            "xml:lang": "en",
        },
    )
    dataset = ET.SubElement(root, "dataset")
    ET.SubElement(dataset, "title").text = f"{project.name}: identified individuals"
    party = ET.SubElement(ET.SubElement(dataset, "creator"), "organizationName")
    party.text = project.organization.name
    ET.SubElement(dataset, "pubDate").text = timezone.now().date().isoformat()
    ET.SubElement(dataset, "language").text = "en"
    abstract = ET.SubElement(ET.SubElement(dataset, "abstract"), "para")
    abstract.text = project.description or (
        f"Sightings of individually identified animals recorded in the Resight project {project.name}."
    )
    rights = ET.SubElement(ET.SubElement(dataset, "intellectualRights"), "para")
    licence = Licence(project.licence)
    rights.text = f"This work is licensed under {licence.label}: {LICENCE_URLS[licence]}. Rights holder: "
    rights.text += project.holder + "."
    ET.SubElement(ET.SubElement(dataset, "contact"), "organizationName").text = project.organization.name
    return _xml(root)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _event_date(sighting: Sighting) -> str:
    """ISO 8601 with the offset of the sighting's own zone (a time without one is ambiguous)."""
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(sighting.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC  # stored zones are validated; a legacy bad one still exports in UTC
    return _iso(sighting.observed_at.astimezone(zone))


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="seconds")


def _number(value: float | None, digits: int = 6) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))


def _cell(value: str) -> str:
    # Tab-separated without quoting: a tab or line break inside a value would shift every later column.
    return " ".join(str(value).split()) if any(c in str(value) for c in "\t\r\n") else str(value)

"""The Darwin Core Archive a GBIF IPT publishes, read back: meta.xml names only terms of the Darwin Core
term list (vendored from TDWG) in their namespaces, occurrence.txt has one row per identified animal per
sighting with what GBIF needs, eml.xml carries title, creator and licence; a partner with the export right
but not curate gets the blurred place of a sensitive species, said in dataGeneralizations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from xml.etree import ElementTree as ET

from django.test import Client

from catalog import services
from catalog.exports.darwin_core import DCTERMS, DWC, TERM_LIST
from resight.models import Right, SharingAgreement
from tests.conftest import World, photo_bytes, upload

TEXT = "{http://rs.tdwg.org/dwc/text/}"


def download(world: World, user: str) -> zipfile.ZipFile:
    client = Client()
    client.force_login(world.users[user])
    response = client.get(f"/projects/{world.project.pk}/export/dwca.zip")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def rows(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    text = archive.read("occurrence.txt").decode()
    return list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_the_archive_names_only_darwin_core_terms_and_reads_back(world: World) -> None:
    # A second photo of L1 in the same sighting is the same occurrence; a new sighting is another.
    second = services.media_asset_create(
        actor=world.users["curator"],
        project=world.project,
        sighting=world.sighting,
        photo=upload("again.jpg", photo_bytes(seed=77)),
    )
    services.annotation_create(
        actor=world.users["curator"],
        media_asset=second,
        species=world.leopard,
        box=(5, 5, 100, 100),
        individual=world.leopard_individual,
    )
    world.project.licence = "CC0-1.0"
    world.project.rights_holder = "Mara Trust"
    world.project.save()
    archive = download(world, "curator")
    assert set(archive.namelist()) == {"occurrence.txt", "meta.xml", "eml.xml"}

    names = TERM_LIST.read_text().split()  # in the standard's order: its first eight are Dublin Core's
    known = set(names)
    meta = ET.fromstring(archive.read("meta.xml"))
    core = meta.find(f"{TEXT}core")
    assert (
        core is not None and core.get("rowType") == DWC + "Occurrence" and meta.get("metadata") == "eml.xml"
    )
    fields = sorted(core.findall(f"{TEXT}field"), key=lambda f: int(f.get("index", "0")))
    header = archive.read("occurrence.txt").decode().splitlines()[0].split("\t")
    assert [f.get("term", "").rsplit("/", 1)[1] for f in fields] == header
    for field in fields:
        term = field.get("term", "")
        namespace, name = term.rsplit("/", 1)
        assert name in known, f"{name} is not a Darwin Core term"
        want = DCTERMS if name in names[:8] else DWC
        assert namespace + "/" == want, term

    records = rows(archive)
    by_individual = {r["organismID"]: r for r in records}
    assert len(records) == 2  # L1 once (two photos of one sighting), Z1 once
    leopard = next(r for r in records if r["scientificName"] == "Panthera pardus")
    assert (
        leopard["organismID"].endswith(f"individual:{world.leopard_individual.pk}")
        and len(by_individual) == 2
    )
    assert leopard["organismName"] == "L1" and leopard["occurrenceStatus"] == "present"
    assert leopard["identificationVerificationStatus"] == "verified"
    assert leopard["decimalLatitude"] == "-1.23456" and leopard["coordinateUncertaintyInMeters"] == "20"
    assert leopard["dataGeneralizations"] == "" and leopard["locality"] == "Den rock"  # a curator's precision
    assert leopard["license"] == "https://creativecommons.org/publicdomain/zero/1.0/legalcode"
    assert leopard["rightsHolder"] == "Mara Trust"
    when = dt.datetime.fromisoformat(leopard["eventDate"])
    assert when.utcoffset() is not None and when == world.sighting.observed_at
    assert len({r["occurrenceID"] for r in records}) == 2

    eml = ET.fromstring(archive.read("eml.xml"))
    assert eml.findtext("dataset/title") == "Big Cats: identified individuals"
    assert eml.findtext("dataset/creator/organizationName") == "Owner Org"
    assert "CC0 1.0" in (eml.findtext("dataset/intellectualRights/para") or "")


def test_an_exporting_partner_gets_no_more_precision_than_it_may_see(world: World) -> None:
    agreement = SharingAgreement.objects.get(grantee__slug="share-view")
    agreement.rights = [Right.VIEW, Right.EXPORT]
    agreement.save()
    leopard = next(r for r in rows(download(world, "share_view")) if r["scientificName"] == "Panthera pardus")
    assert leopard["decimalLatitude"] == "-1.2" and leopard["decimalLongitude"] == "35.1"
    assert int(leopard["coordinateUncertaintyInMeters"]) > 5000 and leopard["locality"] == ""
    assert "sensitive species" in leopard["dataGeneralizations"]
    assert "35.12345" not in download(world, "share_view").read("occurrence.txt").decode()


def test_only_users_with_the_export_right_download_it(world: World) -> None:
    for user, status in (("viewer", 403), ("contributor", 403), ("share_view", 403), ("outsider", 404)):
        client = Client()
        client.force_login(world.users[user])
        assert client.get(f"/projects/{world.project.pk}/export/dwca.zip").status_code == status, user


def test_nothing_is_published_before_the_embargo_day(world: World) -> None:
    world.project.embargo_until = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    world.project.save()
    client = Client()
    client.force_login(world.users["curator"])
    response = client.get(f"/projects/{world.project.pk}/export/dwca.zip")
    assert response.status_code == 409 and "embargoed until" in response.content.decode()
    world.project.embargo_until = dt.datetime.now(dt.UTC).date()
    world.project.save()
    assert download(world, "curator").namelist()

"""Sharing agreements made by the organisations themselves: an admin of the sharing project's organisation
proposes (project, species, rights, optional expiry), an admin of the other organisation accepts or declines,
and either side revokes. Every step is locked, audited and told to the other side's admins. What an active
agreement lets the grantee do is the policy's business (resight.permissions.RIGHT_ACTIONS); RIGHT_EFFECTS says
it in words for the pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from resight import audit, notifications
from resight.models import (
    AgreementStatus,
    Organization,
    Project,
    Right,
    Role,
    SharingAgreement,
    TermsAcceptance,
)
from resight.permissions import (
    Action,
    AnyUser,
    forget_grants,
    organizations_administered,
    projects_for,
    require_project,
    user_or_none,
)

# The platform layer sits below the catalogue (import contracts): it reaches catalog.Species through the
# agreement's own relation instead of importing it.
SPECIES = cast("type[models.Model]", SharingAgreement._meta.get_field("species").related_model)

# Kept beside the policy's RIGHT_ACTIONS: what each right does, in the words the agreement pages use.
RIGHT_EFFECTS: dict[str, str] = {
    Right.VIEW: "see the project's sightings, photos and identified animals, with sensitive species' places "
    "blurred",
    Right.MATCH: "have their own photos compared with the project's identified animals in their match jobs "
    "(the project's pages stay closed to them without View)",
    Right.CURATE: "see the project and decide its identities: confirm matches, declare new individuals, "
    "merge and split, with sensitive places exact",
    Right.EXPORT: "see the project and download its records (capture histories and other exports)",
}


def organizations_of(user: AnyUser) -> models.QuerySet[Organization]:
    """The organisations the user is a member of, in any role."""
    member = user_or_none(user)
    return Organization.objects.filter(memberships__user=member) if member else Organization.objects.none()


def agreements_for(user: AnyUser) -> models.QuerySet[SharingAgreement]:
    """Every agreement either side of which is an organisation the user belongs to (all, for an operator)."""
    rows = SharingAgreement.objects.select_related(
        "project__organization", "grantee", "created_by", "decided_by"
    )
    if getattr(user, "is_superuser", False) and user.is_active:
        return rows.order_by("-created_at")
    orgs = organizations_of(user).values("pk")
    return rows.filter(Q(project__organization_id__in=orgs) | Q(grantee_id__in=orgs)).order_by("-created_at")


def may_answer(user: AnyUser, agreement: SharingAgreement) -> bool:
    return (
        agreement.status == AgreementStatus.PROPOSED
        and organizations_administered(user).filter(pk=agreement.grantee_id).exists()
    )


def may_revoke(user: AnyUser, agreement: SharingAgreement) -> bool:
    if agreement.status not in (AgreementStatus.PROPOSED, AgreementStatus.ACTIVE):
        return False
    sides = [agreement.project.organization_id, agreement.grantee_id]
    return organizations_administered(user).filter(pk__in=sides).exists()


def agreement_propose(
    *,
    actor: AnyUser,
    project: Project,
    grantee: Organization,
    rights: Sequence[str],
    species: Iterable[Any] = (),
    expires_at: dt.datetime | None = None,
    region: tuple[float, float, float, float] | None = None,
) -> SharingAgreement:
    """`region` (south, west, north, east) limits the agreement to sightings inside that box."""
    require_project(actor, project, Action.MANAGE)
    chosen = [r for r in Right.values if r in set(rights)]  # known rights, in their usual order, once each
    if not chosen or len(set(rights)) != len(chosen):
        raise ValidationError({"rights": "Choose one or more of: view, match, curate, export."})
    if grantee.pk == project.organization_id:
        raise ValidationError({"grantee": "The project's own organisation has its members' roles already."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "An agreement cannot expire before it is answered."})
    species = list(species)
    with transaction.atomic():
        waiting = SharingAgreement.objects.select_for_update().filter(
            project=project, grantee=grantee, status=AgreementStatus.PROPOSED
        )
        if waiting.exists():
            raise ValidationError(
                f"A proposal to {grantee.name} for {project.name} awaits their answer already."
            )
        agreement = SharingAgreement(
            project=project,
            grantee=grantee,
            rights=chosen,
            expires_at=expires_at,
            created_by=user_or_none(actor),
            status=AgreementStatus.PROPOSED,
        )
        if region is not None:
            south, west, north, east = region
            agreement.region_south, agreement.region_west = south, west
            agreement.region_north, agreement.region_east = north, east
        try:
            agreement.full_clean()
        except ValidationError as exc:
            if "__all__" in exc.message_dict:  # the region box's constraint
                raise ValidationError(
                    {"region": "South <= north within -90..90 and west <= east within -180..180."}
                ) from exc
            raise
        agreement.save()
        agreement.species.set(species)
        audit.record(
            actor=actor,
            action="agreement.propose",
            obj=agreement,
            project_id=project.pk,
            changes={
                "grantee": [None, grantee.pk],
                "rights": [None, chosen],
                "species": [None, sorted(s.pk for s in species)],
                "expires_at": [None, expires_at.isoformat() if expires_at else None],
                "region": [None, list(region) if region else None],
            },
        )
        _tell(
            _admins(grantee),
            agreement,
            f"{project.organization.name} proposes to share {project.name} with {grantee.name}: "
            f"{_in_words(agreement, species)}. Accept or decline on the Sharing page.",
        )
    return agreement


def agreement_accept(*, actor: AnyUser, agreement: SharingAgreement) -> SharingAgreement:
    return _settle(actor, agreement, AgreementStatus.ACTIVE, "accept", "accepted")


def agreement_decline(*, actor: AnyUser, agreement: SharingAgreement) -> SharingAgreement:
    return _settle(actor, agreement, AgreementStatus.DECLINED, "decline", "declined")


def agreement_revoke(*, actor: AnyUser, agreement: SharingAgreement) -> SharingAgreement:
    return _settle(actor, agreement, AgreementStatus.REVOKED, "revoke", "revoked")


def _settle(
    actor: AnyUser, agreement: SharingAgreement, status: str, verb: str, done: str
) -> SharingAgreement:
    """Move the agreement on under a row lock (two admins answering at once: the second is told), audit
    it and tell the admins of both sides but the actor."""
    with transaction.atomic():
        locked = (
            SharingAgreement.objects.select_for_update(of=("self",))
            .select_related("project__organization", "grantee")
            .get(pk=agreement.pk)
        )
        allowed = may_revoke(actor, locked) if verb == "revoke" else may_answer(actor, locked)
        if not allowed:
            if not _is_party(actor, locked):
                raise PermissionDenied("Only an admin of either organisation may change this agreement.")
            if locked.status != AgreementStatus.PROPOSED or verb == "revoke":
                raise ValidationError(f"This agreement is {locked.get_status_display().lower()} already.")
            raise PermissionDenied(f"Only an admin of {locked.grantee.name} may answer this proposal.")
        audit.save(
            actor=actor,
            obj=locked,
            action=f"agreement.{verb}",
            changes={"status": status, "decided_by": user_or_none(actor), "decided_at": timezone.now()},
        )
        sharer, grantee = locked.project.organization, locked.grantee
        _tell(
            [u for u in _admins(sharer) + _admins(grantee) if u.pk != getattr(actor, "pk", None)],
            locked,
            f"The agreement sharing {locked.project.name} ({sharer.name}) with {grantee.name} was {done} "
            f"by {actor.get_username()}.",
        )
    forget_grants(actor)
    return locked


def terms_pending(user: AnyUser, agreement: SharingAgreement) -> bool:
    """Whether the project asks this user (a grantee's member) to accept its current terms first."""
    project = agreement.project
    if not project.terms_of_use.strip() or agreement.project.organization_id in _member_of(user):
        return False
    done = TermsAcceptance.objects.filter(user=user_or_none(user), project=project)
    return not done.filter(terms_digest=project.terms_digest).exists()


def terms_accept(*, actor: AnyUser, agreement: SharingAgreement) -> TermsAcceptance:
    """A member of the grantee accepts the project's current terms of use for themselves."""
    member = user_or_none(actor)
    if member is None or agreement.grantee_id not in _member_of(actor):
        raise PermissionDenied(
            "Only members of the organisation the project is shared with accept its terms."
        )
    if agreement.status != AgreementStatus.ACTIVE:
        raise ValidationError("Terms are accepted under an active agreement.")
    project = agreement.project
    with transaction.atomic():
        acceptance, created = TermsAcceptance.objects.get_or_create(
            user=member, project=project, terms_digest=project.terms_digest
        )
        if created:
            audit.record(
                actor=actor,
                action="terms.accept",
                obj=acceptance,
                project_id=project.pk,
                changes={"terms_digest": [None, project.terms_digest]},
            )
    forget_grants(actor)
    return acceptance


def _member_of(user: AnyUser) -> set[int]:
    return set(organizations_of(user).values_list("pk", flat=True))


def _is_party(user: AnyUser, agreement: SharingAgreement) -> bool:
    sides = [agreement.project.organization_id, agreement.grantee_id]
    return organizations_administered(user).filter(pk__in=sides).exists()


def _admins(organization: Organization) -> list[User]:
    return list(
        User.objects.filter(
            memberships__organization=organization, memberships__role=Role.ADMIN, is_active=True
        )
    )


def _in_words(agreement: SharingAgreement, species: Sequence[Any]) -> str:
    rights = ", ".join(Right(r).label.lower() for r in agreement.rights)
    scope = ", ".join(s.common_name for s in species) if species else "every species"
    until = f" until {agreement.expires_at:%Y-%m-%d}" if agreement.expires_at else ""
    where = f" within {region_words(agreement.region)}" if agreement.region else ""
    return f"{rights} on {scope}{where}{until}"


def region_words(region: tuple[float, float, float, float]) -> str:
    south, west, north, east = region
    return f"latitude {south:g} to {north:g}, longitude {west:g} to {east:g}"


def _tell(recipients: list[User], agreement: SharingAgreement, text: str) -> None:
    url = reverse("sharing") + f"#agreement-{agreement.pk}"
    notifications.notify(recipients, kind="agreement", text=text, url=url)


def can_propose(user: AnyUser) -> bool:
    return projects_for(user, Action.MANAGE).exists()

"""The one permission policy: roles and sharing agreements -> actions, and queryset scoping.

Every surface (HTML views, the REST API, media file URLs, and the matching shortlist) asks this module and
nothing else. A model takes part by declaring where its project and species are:

    policy_project_path = "project"            # lookup from the model to its Project
    policy_species_path = "species"            # lookup to its Species, or None if it has none

Rules:
- Members of the organisation that owns a project act on it with their role's actions.
- Members of an organisation holding a valid sharing agreement on a project get exactly the agreement's
  rights, restricted to its species when it names any.
- Superusers (operators) may do everything.
- What a user may not see is a 404; what they may see but not do is a 403.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import Http404

from resight.models import Membership, Organization, Project, Right, Role, SharingAgreement, TermsAcceptance

M = TypeVar("M", bound=models.Model)
AnyUser = User | AnonymousUser


class Action(enum.StrEnum):
    VIEW = "view"
    CONTRIBUTE = "contribute"  # add sightings, photos, annotations
    MATCH = "match"  # have this project's catalogue searched in one's match jobs
    CURATE = "curate"  # decide identities, edit individuals, see precise sensitive locations
    EXPORT = "export"
    MANAGE = "manage"  # project settings, sharing agreements


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.CONTRIBUTOR: frozenset({Action.VIEW, Action.CONTRIBUTE, Action.MATCH}),
    Role.CURATOR: frozenset({Action.VIEW, Action.CONTRIBUTE, Action.MATCH, Action.CURATE, Action.EXPORT}),
    Role.ADMIN: frozenset(Action),
}

# Curating or exporting what one cannot see makes no sense, so those rights carry VIEW with them.
# Match-against alone does not: the shortlist may use such a project without its pages opening.
RIGHT_ACTIONS: dict[str, frozenset[Action]] = {
    Right.VIEW: frozenset({Action.VIEW}),
    Right.MATCH: frozenset({Action.MATCH}),
    Right.CURATE: frozenset({Action.VIEW, Action.CURATE}),
    Right.EXPORT: frozenset({Action.VIEW, Action.EXPORT}),
}


@dataclass(frozen=True)
class Grant:
    project_id: int
    actions: frozenset[Action]
    species_ids: frozenset[int] | None  # None: every species
    region: tuple[float, float, float, float] | None = None  # (south, west, north, east); None: everywhere


def _is_superuser(user: AnyUser) -> bool:
    return bool(getattr(user, "is_superuser", False) and user.is_active)


def user_or_none(user: AnyUser | None) -> User | None:
    """The signed-in user, or None for an anonymous one: what a row's created_by, requested_by... records."""
    return user if isinstance(user, User) and user.is_authenticated else None


def is_operator(user: AnyUser) -> bool:
    """Operators (staff) run the instance: shared reference data (species), model versions and training,
    and the instance-wide figures that go with them."""
    return bool(getattr(user, "is_staff", False) and user.is_active)


def require_operator(user: AnyUser) -> None:
    if not is_operator(user):
        raise PermissionDenied("Only an operator of this instance (staff) may do this.")


def grants_for(user: AnyUser) -> list[Grant]:
    """What `user` may do, project by project. Cached on the user object for the request."""
    if not user.is_authenticated or not user.is_active:
        return []
    cached: list[Grant] | None = getattr(user, "_resight_grants", None)
    if cached is not None:
        return cached
    grants: list[Grant] = []
    memberships = Membership.objects.filter(user=user).values_list("organization_id", "role")
    role_by_org = dict(memberships)
    for project_id, org_id in Project.objects.filter(organization_id__in=role_by_org).values_list(
        "id", "organization_id"
    ):
        grants.append(Grant(project_id, ROLE_ACTIONS[role_by_org[org_id]], None))
    agreements = (
        SharingAgreement.objects.valid()
        .filter(grantee_id__in=role_by_org)
        .select_related("project")
        .prefetch_related("species")
    )
    accepted = set(TermsAcceptance.objects.filter(user=user).values_list("project_id", "terms_digest"))
    for agreement in agreements:
        if not terms_accepted(agreement.project, accepted):
            continue  # a partner's member reads and accepts the project's terms first (resight.sharing)
        grants.append(
            Grant(
                agreement.project_id,
                agreement_actions(agreement),
                agreement_species(agreement),
                agreement.region,
            )
        )
    setattr(user, "_resight_grants", grants)  # noqa: B010 - a per-request cache on the user object
    return grants


def terms_accepted(project: Project, accepted: set[tuple[int, str]]) -> bool:
    """Whether the project has no terms of use, or `accepted` (project id, terms digest) holds its current
    ones."""
    return not project.terms_of_use.strip() or (project.pk, project.terms_digest) in accepted


def agreement_actions(agreement: SharingAgreement) -> frozenset[Action]:
    return frozenset().union(*(RIGHT_ACTIONS[r] for r in agreement.rights))


def agreement_species(agreement: SharingAgreement) -> frozenset[int] | None:
    """The species the agreement is restricted to (prefetched), or None for every species."""
    return frozenset(s.pk for s in agreement.species.all()) or None


def users_granted(project_id: int, action: Action, species_id: int | None = None) -> list[User]:
    """Everyone who may do `action` in the project (on `species_id`): members of the owning organisation by
    role, and members of organisations holding a valid agreement that grants it. The reverse of grants_for,
    for telling people about work that awaits them."""
    project = Project.objects.get(pk=project_id)
    roles = [role for role, actions in ROLE_ACTIONS.items() if action in actions]
    orgs = Q(memberships__organization_id=project.organization_id, memberships__role__in=roles)
    for agreement in (
        SharingAgreement.objects.valid().filter(project_id=project_id).prefetch_related("species")
    ):
        species = agreement_species(agreement)
        if action in agreement_actions(agreement) and (
            species is None or species_id is None or species_id in species
        ):
            orgs |= Q(memberships__organization_id=agreement.grantee_id)
    return list(User.objects.filter(orgs, is_active=True).distinct().order_by("pk"))


def actions_anywhere(user: AnyUser) -> frozenset[Action]:
    """The actions `user` may take in at least one project (every action for an operator)."""
    if _is_superuser(user):
        return frozenset(Action)
    return frozenset().union(*(g.actions for g in grants_for(user)))


def forget_grants(user: AnyUser) -> None:
    """Drop the per-request cache (after memberships or agreements change)."""
    if hasattr(user, "_resight_grants"):
        delattr(user, "_resight_grants")


def _condition(model: type[models.Model], grant: Grant) -> Q:
    project_path: str = model.policy_project_path  # type: ignore[attr-defined]
    species_path: str | None = model.policy_species_path  # type: ignore[attr-defined]
    cond = Q(**{project_path: grant.project_id})
    if grant.species_ids is not None and species_path is not None:
        cond &= Q(**{f"{species_path}__in": grant.species_ids})
    place: str | None = getattr(model, "policy_place_path", None)
    if grant.region is not None and place is not None:
        south, west, north, east = grant.region
        cond &= Q(
            **{
                f"{place}latitude__gte": south,
                f"{place}latitude__lte": north,
                f"{place}longitude__gte": west,
                f"{place}longitude__lte": east,
            }
        )
    return cond


def scope(queryset: models.QuerySet[M], user: AnyUser, action: Action) -> models.QuerySet[M]:
    """Only the rows of `queryset` on which `user` may perform `action`."""
    if _is_superuser(user):
        return queryset
    model = queryset.model
    conditions = [_condition(model, g) for g in grants_for(user) if action in g.actions]
    if not conditions:
        return queryset.none()
    combined = Q()
    for cond in conditions:
        combined |= cond
    # A subquery rather than a join: species paths may cross a to-many relation (a sighting's annotations),
    # and a join would repeat rows.
    return queryset.filter(pk__in=model._default_manager.filter(combined).values("pk"))


def can(user: AnyUser, obj: models.Model, action: Action) -> bool:
    return scope(type(obj)._default_manager.filter(pk=obj.pk), user, action).exists()


def get_for(user: AnyUser, queryset: models.QuerySet[M], action: Action = Action.VIEW, **lookup: Any) -> M:
    """Fetch one object: 404 when the user cannot see it, 403 when they see it but may not do `action`."""
    try:
        obj = scope(queryset, user, Action.VIEW).get(**lookup)
    except (ObjectDoesNotExist, ValueError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc
    require(user, obj, action)
    return obj


def require(user: AnyUser, obj: models.Model, action: Action) -> None:
    """403 unless `user` may do `action` on `obj` (which the caller already knows they may see)."""
    if not can(user, obj, action):
        raise PermissionDenied(f"You may not {action.value} this {obj._meta.verbose_name}.")


def granted(user: AnyUser, project_id: int, action: Action, species_ids: Iterable[int] = ()) -> bool:
    """In memory: may `user` do `action` in the project, on every species in `species_ids`?"""
    if _is_superuser(user):
        return True
    wanted = set(species_ids)
    for g in grants_for(user):
        if (
            g.project_id == project_id
            and action in g.actions
            and (g.species_ids is None or wanted <= g.species_ids)
        ):
            return True
    return False


def require_project(user: AnyUser, project: Project, action: Action, species_id: int | None = None) -> None:
    """For creating things in a project: 404 if the project is invisible, 403 if `action` is not granted
    (for `species_id`, when the new object has a species)."""
    if not granted(user, project.pk, Action.VIEW):
        raise Http404("No project matches the given query.")
    if not granted(user, project.pk, action, [species_id] if species_id is not None else []):
        raise PermissionDenied(f"You may not {action.value} in this project.")


def projects_for(user: AnyUser, action: Action) -> models.QuerySet[Project]:
    return scope(Project.objects.all(), user, action)


@dataclass(frozen=True)
class End:
    """One end of a write that links two objects: the project and species of the object."""

    project_id: int
    species_id: int | None


def require_link(user: AnyUser, action: Action, *ends: End) -> None:
    """Writes that link objects (a photo's animal to an individual, a merge's two individuals) need
    `action` on every end, for its species, and never reach across organisations: a grantee curates within
    what the owner shared, so the owner never finds its photos on an animal it cannot see, nor loses an
    individual to another organisation's catalogue. 403 otherwise."""
    for end in ends:
        if not granted(user, end.project_id, action, [end.species_id] if end.species_id else []):
            raise PermissionDenied(f"You may not {action.value} every side of this change.")
    owners = set(
        Project.objects.filter(pk__in={e.project_id for e in ends}).values_list("organization_id", flat=True)
    )
    if len(owners) > 1:
        raise PermissionDenied(
            "These belong to projects of different organisations: identities are linked only within one "
            "organisation's projects."
        )


def projects_matched_from(project: Project, species_id: int) -> list[int]:
    """The catalogues a photo of `project` is compared with, whoever asks: the owning organisation's
    projects, and the projects that share match-against with that organisation (for this species).
    Not the uploader's own rights: an operator's or a multi-organisation member's upload searches no
    more than any other photo of the project."""
    ids = set(Project.objects.filter(organization_id=project.organization_id).values_list("pk", flat=True))
    shared = SharingAgreement.objects.valid().filter(grantee_id=project.organization_id)
    for agreement in shared.prefetch_related("species"):
        species = agreement_species(agreement)
        if Action.MATCH in agreement_actions(agreement) and (species is None or species_id in species):
            ids.add(agreement.project_id)
    return sorted(ids)


def organizations_administered(user: AnyUser) -> models.QuerySet[Organization]:
    if _is_superuser(user):
        return Organization.objects.all()
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user, memberships__role=Role.ADMIN)


def require_org_admin(user: AnyUser, organization: Organization) -> None:
    if not organizations_administered(user).filter(pk=organization.pk).exists():
        raise PermissionDenied("Only an admin of the organisation may do this.")

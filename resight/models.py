"""The platform layer: who belongs where, what is shared with whom, and what happened."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from resight.validators import validate_time_zone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    CURATOR = "curator", "Curator"
    CONTRIBUTOR = "contributor", "Contributor"
    VIEWER = "viewer", "Viewer"


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Licence(models.TextChoices):
    """The licences GBIF accepts for occurrence data (SPDX identifiers)."""

    CC0 = "CC0-1.0", "CC0 1.0 (public domain)"
    CC_BY = "CC-BY-4.0", "CC BY 4.0 (attribution)"
    CC_BY_NC = "CC-BY-NC-4.0", "CC BY-NC 4.0 (attribution, non-commercial)"


LICENCE_URLS = {
    Licence.CC0: "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    Licence.CC_BY: "https://creativecommons.org/licenses/by/4.0/legalcode",
    Licence.CC_BY_NC: "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
}


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    description = models.TextField(blank=True)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Where the project works: new sightings start in this IANA zone",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # What travels with every record that leaves the project (exports), and what partners see first.
    licence = models.CharField(
        max_length=20,
        choices=Licence.choices,
        default=Licence.CC_BY,
        help_text="The licence of the project's records in every export",
    )
    rights_holder = models.CharField(
        max_length=200, blank=True, help_text="Who holds the rights; empty: the organisation"
    )
    embargo_until = models.DateField(
        null=True,
        blank=True,
        help_text="Sharing agreements grant nothing before this day (UTC)",
    )
    terms_of_use = models.TextField(
        blank=True, help_text="Partners accept these before their first access (and again when they change)"
    )

    policy_project_path = "pk"
    policy_species_path = None

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="project_slug_unique_in_org"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def holder(self) -> str:
        return self.rights_holder or self.organization.name

    @property
    def terms_digest(self) -> str:
        """Names the current terms: an acceptance of older terms does not count for new ones."""
        return hashlib.sha256(self.terms_of_use.strip().encode()).hexdigest()[:16]

    def embargoed(self, at: Any = None) -> bool:
        today = (at or timezone.now()).date()
        return self.embargo_until is not None and self.embargo_until > today


class TermsAcceptance(models.Model):
    """A partner's member accepted a project's terms of use (as they read when accepted)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="terms_acceptances")
    terms_digest = models.CharField(max_length=16)
    accepted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project", "terms_digest"], name="terms_accepted_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} accepted the terms of {self.project}"


class Right(models.TextChoices):
    """What a sharing agreement can grant to another organisation."""

    VIEW = "view", "View"
    MATCH = "match", "Match against"
    CURATE = "curate", "Curate"
    EXPORT = "export", "Export"


class AgreementStatus(models.TextChoices):
    """An agreement's life: proposed by the sharing side, accepted (active) or declined by the other side,
    revoked by either. Only active, unexpired agreements grant anything."""

    PROPOSED = "proposed", "Proposed"
    ACTIVE = "active", "Active"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"


class SharingAgreementQuerySet(models.QuerySet["SharingAgreement"]):
    def valid(self, at: Any = None) -> SharingAgreementQuerySet:
        at = at or timezone.now()
        # An embargoed project's agreements wait for its embargo day (Project.embargo_until).
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at),
            Q(project__embargo_until__isnull=True) | Q(project__embargo_until__lte=at.date()),
            status=AgreementStatus.ACTIVE,
        )


class SharingAgreement(models.Model):
    """`project` shares with `grantee`: its members get exactly `rights`, on `species` (all if empty),
    until `expires_at`, while the agreement is active. Agreements made in the Django admin by an operator
    are active at once; those proposed in the browser wait for the grantee (resight.sharing)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sharing_agreements")
    grantee = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="agreements_received")
    rights = models.JSONField(default=list, help_text="Any of: view, match, curate, export")
    species = models.ManyToManyField("catalog.Species", blank=True, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=AgreementStatus.choices, default=AgreementStatus.ACTIVE)
    # An optional region: only records of sightings inside this latitude/longitude box are shared (a box
    # that crosses the antimeridian is two agreements).
    region_south = models.FloatField(null=True, blank=True)
    region_west = models.FloatField(null=True, blank=True)
    region_north = models.FloatField(null=True, blank=True)
    region_east = models.FloatField(null=True, blank=True)
    # Who settled it (accepted, declined or revoked) and when; the audit log keeps every step.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = SharingAgreementQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(rights__contained_by=["view", "match", "curate", "export"]),
                name="sharing_rights_known",
            ),
            models.CheckConstraint(
                condition=Q(
                    region_south__isnull=True,
                    region_west__isnull=True,
                    region_north__isnull=True,
                    region_east__isnull=True,
                )
                | Q(
                    region_south__gte=-90,
                    region_north__lte=90,
                    region_south__lte=F("region_north"),
                    region_west__gte=-180,
                    region_east__lte=180,
                    region_west__lte=F("region_east"),
                ),
                name="sharing_region_box",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} -> {self.grantee}: {', '.join(self.rights)}"

    @property
    def region(self) -> tuple[float, float, float, float] | None:
        """(south, west, north, east), or None for the whole project."""
        box = (self.region_south, self.region_west, self.region_north, self.region_east)
        return None if any(v is None for v in box) else box  # type: ignore[return-value]

    @property
    def is_valid(self) -> bool:
        """What valid() selects, for one agreement in memory."""
        return (
            self.status == AgreementStatus.ACTIVE
            and (self.expires_at is None or self.expires_at > timezone.now())
            and not self.project.embargoed()
        )


class AuditEvent(models.Model):
    """Append-only log. The database itself refuses UPDATE and DELETE on this table (see migration 0002)."""

    # No foreign keys: an append-only row must survive the deletion of the user or project it names.
    actor_id = models.IntegerField(null=True, blank=True, db_index=True)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=80)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M}"
        return f"{when} {self.actor_name} {self.action} {self.object_type}#{self.object_id}"


class Notification(models.Model):
    """Something a user should look at: a finished match job, a confident match awaiting review, an
    imported upload. Shown in the top bar until read."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=40)
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return self.text


class TokenScope(models.TextChoices):
    """What a personal API token may do: read (GET), write (everything else), match (start match jobs)."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    MATCH = "match", "Match"


class PersonalToken(models.Model):
    """An API token its user made in the browser, with a name and scopes. django-rest-knox's AuthToken holds
    the secret's hash and the expiry; tokens from the password exchange have no row here and every scope."""

    token = models.OneToOneField(
        "knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="personal"
    )
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=["read", "write", "match"]), name="token_scopes_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.scopes)})"


class WebhookEvent(models.TextChoices):
    JOB_FINISHED = "job.finished", "A match job finished"
    IDENTITY_CONFIRMED = "identity.confirmed", "An identity was confirmed (or a new individual declared)"
    IMPORT_DONE = "import.done", "A bulk upload was imported"


class Webhook(models.Model):
    """An organisation's endpoint told of events in its projects: a POST of JSON signed with `secret`
    (HMAC-SHA256 in X-Resight-Signature), retried, each attempt in the delivery log (resight.webhooks)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(events__contained_by=["job.finished", "identity.confirmed", "import.done"]),
                name="webhook_events_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.url}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook.url}: {self.state}"

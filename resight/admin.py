from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms.models import model_to_dict
from django.http import HttpRequest

from resight import audit
from resight.models import AuditEvent, Membership, Organization, Project, Right, SharingAgreement

# Values the log never keeps (a password hash is a secret even when hashed): only that they changed.
SECRET_FIELDS = {"password"}


def _hide(state: dict[str, Any]) -> dict[str, Any]:
    return {k: ("(secret)" if k in SECRET_FIELDS and v else v) for k, v in state.items()}


def _state(obj: models.Model) -> dict[str, Any]:
    return _hide(model_to_dict(obj))


def _project_id(obj: models.Model) -> int | None:
    return obj.pk if isinstance(obj, Project) else getattr(obj, "project_id", None)


def _record(request: HttpRequest, verb: str, obj: models.Model, before: dict[str, Any]) -> None:
    after = {} if verb == "delete" else _state(obj)
    changes = audit.diff(before, after) if verb != "delete" else {"deleted": [str(obj)[:200], None]}
    audit.record(
        actor=request.user,
        action=f"admin.{obj._meta.model_name}.{verb}",
        obj=obj,
        project_id=_project_id(obj),
        changes=changes,
    )


class AuditedAdmin(admin.ModelAdmin):
    """Edits in the Django admin go into the audit log like every other write: who, what, before and
    after (many-to-many fields such as an agreement's species included), and inline rows too."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic():  # the object, its relations and its event together
            return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = _hide(audit.stored_before(obj)) if change else {}
        request._audit_before = before  # type: ignore[attr-defined]  # read by save_related
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the many-to-many fields are saved, so the event shows them as they now are.
        _record(request, "change" if change else "add", form.instance, request._audit_before)  # type: ignore[attr-defined]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        before = {o.pk: _state(o) for o in formset.get_queryset()} if hasattr(formset, "get_queryset") else {}
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            _record(request, "add", obj, {})
        for obj, _fields in formset.changed_objects:
            _record(request, "change", obj, before.get(obj.pk, {}))
        for obj in formset.deleted_objects:
            _record(request, "delete", obj, before.get(obj.pk, {}))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            _record(request, "delete", obj, _state(obj))
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                _record(request, "delete", obj, _state(obj))
            super().delete_queryset(request, queryset)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Project)
class ProjectAdmin(AuditedAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}


class SharingAgreementForm(forms.ModelForm):
    """Rights as checkboxes (the model keeps them as a JSON list)."""

    rights = forms.MultipleChoiceField(choices=Right.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = SharingAgreement
        fields = ["project", "grantee", "rights", "species", "expires_at", "status", "created_by"]


@admin.register(SharingAgreement)
class SharingAgreementAdmin(AuditedAdmin):
    form = SharingAgreementForm
    list_display = ["project", "grantee", "rights", "status", "expires_at", "created_at"]
    list_filter = ["status", "grantee"]
    filter_horizontal = ["species"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only (the database refuses updates and deletes)."""

    list_display = ["created_at", "actor_name", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_repr", "actor_name", "object_id"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


# Users too: who made whom staff or superuser is the first thing to ask after an incident.
admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass

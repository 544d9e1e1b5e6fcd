"""Bulk uploads checked before the plan of each photo took its present shape (the sighting's values under
`sighting`, the grouping key under `group`) are checked again before they import: a checked upload goes
back to receiving, an import under way stops with a message (what was imported stays)."""

from django.db import migrations


def check_again(apps, schema_editor):
    UploadBatch = apps.get_model("catalog", "UploadBatch")
    old_plans = {"state": "received", "plan__has_key": "time_zone"}
    UploadBatch.objects.filter(state="valid", items__in=_items(apps, old_plans)).update(state="receiving")
    UploadBatch.objects.filter(state="importing", items__in=_items(apps, old_plans)).update(
        state="failed", error="Resight was updated while this upload was importing: check it again."
    )


def _items(apps, lookup):
    return apps.get_model("catalog", "UploadItem").objects.filter(**lookup)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0009_upload_batch_acting_user")]
    operations = [migrations.RunPython(check_again, migrations.RunPython.noop)]

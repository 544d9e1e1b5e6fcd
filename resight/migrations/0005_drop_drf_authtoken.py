"""DRF's authtoken app is replaced by django-rest-knox: its table held every API token in plain text, never
expiring, and nothing reads it any more. Dropped where an older Resight created it; nothing on a new database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("resight", "0004_notifications")]

    operations = [
        migrations.RunSQL('DROP TABLE IF EXISTS "authtoken_token"', reverse_sql=migrations.RunSQL.noop),
    ]

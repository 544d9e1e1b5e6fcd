"""TRUNCATE of the decision log and the identity-change log is refused like their UPDATE and DELETE (see
resight's migration 0006 for the function and the one exception, test databases)."""

from django.db import migrations

TABLES = ["identification_decision", "identification_identitychange"]


class Migration(migrations.Migration):
    dependencies = [("identification", "0008_training_runs"), ("resight", "0006_append_only_truncate")]
    operations = [
        migrations.RunSQL(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION resight_refuse_truncate();",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};",
        )
        for table in TABLES
    ]

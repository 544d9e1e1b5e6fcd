"""TRUNCATE of the append-only logs (audit events; decisions and identity changes in identification) is
refused too, unless the connection says it may (`resight.allow_truncate = on`): only the test settings
do, so that test databases can be flushed between tests. An operator who really means to wipe a log sets
it in their own session."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION resight_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('resight.allow_truncate', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION '% is append-only (TRUNCATE refused)', TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER resight_audit_no_truncate
    BEFORE TRUNCATE ON resight_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION resight_refuse_truncate();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS resight_audit_no_truncate ON resight_auditevent;
DROP FUNCTION IF EXISTS resight_refuse_truncate();
"""


class Migration(migrations.Migration):
    dependencies = [("resight", "0005_drop_drf_authtoken")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

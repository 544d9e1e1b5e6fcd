"""The audit log is append-only in the database itself, not just in the admin: any UPDATE or DELETE on it
raises, whoever issues it. (TRUNCATE is refused too since migration 0006.)"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION resight_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'resight_auditevent is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER resight_audit_append_only
    BEFORE UPDATE OR DELETE ON resight_auditevent
    FOR EACH ROW EXECUTE FUNCTION resight_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS resight_audit_append_only ON resight_auditevent;
DROP FUNCTION IF EXISTS resight_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("resight", "0002_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

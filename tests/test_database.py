"""The tests run on PostgreSQL with pgvector (the embedded server), never on SQLite."""

from django.db import connection


def test_database_is_postgresql_with_pgvector(db):
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        major, minor = (int(p) for p in version.split(".")[:2])
        assert (major, minor) >= (0, 7)  # halfvec and iterative index scans
        cursor.execute("SELECT current_setting('server_version_num')::int")
        assert cursor.fetchone()[0] >= 160000
        # halfvec beyond the 2,000 dimensions `vector` can index: the MiewID embedding size.
        cursor.execute("SELECT vector_dims(array_fill(0.5, ARRAY[2152])::halfvec)")
        assert cursor.fetchone()[0] == 2152
        cursor.execute("SELECT '[1,0,0]'::halfvec(3) <=> '[0,1,0]'::halfvec(3)")
        assert cursor.fetchone()[0] == 1.0

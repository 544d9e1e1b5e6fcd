"""Django database backend: PostgreSQL, started on first connection from the embedded server."""

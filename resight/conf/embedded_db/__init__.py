"""The embedded PostgreSQL: `server` starts and shares one server per data directory between the processes
of the platform; this package is also the Django database backend (ENGINE "resight.conf.embedded_db",
`base`) that starts it on the first connection."""

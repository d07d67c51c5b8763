"""Settings, all read from the environment (see README "Settings")."""

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The default only suits a local demo; production sets SECRET_KEY (see docs/deployment.md).
DEMO_SECRET_KEY = "insecure-local-demo-key-set-SECRET_KEY-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=DEMO_SECRET_KEY)
# Keys for ID numbers (core/pii.py): a digest key for lookup and an encryption key.
# Unset, both are derived from SECRET_KEY; set them once in production and never change
# them, or stored ID numbers can no longer be found or shown.
PII_DIGEST_KEY = env.str("PII_DIGEST_KEY", default="")
PII_ENCRYPTION_KEY = env.str("PII_ENCRYPTION_KEY", default="")
# Key for card PIN hashes (cards/services/ledger.py); unset, derived from SECRET_KEY. Changing it invalidates
# every PIN.
CARD_PIN_KEY = env.str("CARD_PIN_KEY", default="")
# Card number prefixes by product code or kind (registered, bearer); see cards/services/production.py.
CARD_NO_PREFIXES = env.json("CARD_NO_PREFIXES", default={})
# Card-number guessing (cards/api.py): this many unknown card numbers from one terminal within the window
# makes every card call of that terminal 429 rate_limited until the window has passed.
CARD_GUESS_LIMIT = env.int("CARD_GUESS_LIMIT", default=20)
CARD_GUESS_WINDOW = env.int("CARD_GUESS_WINDOW", default=300)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "simple_history",
    "axes",
    "django_celery_beat",
    "django_celery_results",
    "core",
    "stores",
    "approvals",
    "membership",
    "cards",
    "campaigns",
    "settlement",
    "reports",
    "integrations",
    # Last: the project's own commands (seed_demo, ensure_admin), which use every app.
    "config",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ApiFrameMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Under /api/ (config.wsgi): what a till's call needs of the stack above, in the same order.
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ApiFrameMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A reused connection is checked before a request uses it, so the first request after a database restart
# reconnects instead of failing; on PostgreSQL by looking at its socket, with no round trip while it is alive
# (core/backends/postgresql).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "core.backends.postgresql"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# Django's Redis cache, with its clients kept per connection pool rather than built on every call.
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "core.backends.redis.RedisCache"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.5)
# Failures are counted per client address over every username; a username is never locked on its own, only
# together with the address the failures came from, so nobody can lock a named account out from elsewhere.
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = _("Too many failed logins from this address: logins from it are refused for a while. "
                         "Try again later, or ask headquarters to unlock it.")
# A successful login forgets only that user's failures at that address, not the whole address's (core/lockout.py).
AXES_HANDLER = "core.lockout.LoginLockoutHandler"
# The client address for axes and the personal-data audit log (core/http.py). No proxy is trusted by default:
# REMOTE_ADDR is the client and a client's own X-Forwarded-For is ignored. Behind the reverse proxy set
# TRUSTED_PROXY_COUNT to the number of proxies that append to TRUSTED_PROXY_HEADER (docs/deployment.md, section 5);
# TRUSTED_PROXY_IPS (addresses or networks) limits whose header is read.
AXES_CLIENT_IP_CALLABLE = "core.http.client_ip"
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
TRUSTED_PROXY_HEADER = env.str("TRUSTED_PROXY_HEADER", default="X-Forwarded-For")
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=[])

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"

LOGIN_URL = "admin:login"

# Celery: without a broker, tasks run in process so a fresh machine needs nothing else.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The broker of `make run` (core/management/commands/run_all.py): kombu's filesystem transport, messages as
    # files in a folder that the web server, the worker and beat of one machine share; no server to run.
    # run_all creates the folders.
    _celery_folder = Path(env.str("CELERY_FILESYSTEM_FOLDER", default=str(BASE_DIR / "var" / "celery")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_folder / "queue"),
        "data_folder_out": str(_celery_folder / "queue"),
        "control_folder": str(_celery_folder / "control"),
        # Messages taken by the worker are kept here (not in /tmp) to see what ran; run_all prunes the old ones.
        "store_processed": True,
        "processed_folder": str(_celery_folder / "processed"),
    }
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["stores.api_auth.TerminalKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["stores.api_auth.IsTerminal"],
    "DEFAULT_THROTTLE_CLASSES": ["stores.api_auth.TerminalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"terminal": env.str("POS_RATE_LIMIT", default="6000/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.PosJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Retail back office POS API",
    "DESCRIPTION": "POS API v1 for every format's point-of-sale systems.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The frame's answers (400, 401, 429, 503 with Retry-After) and the Idempotency-Key of every POST.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.schema.api_frame_responses"],
}

# Master-data files through the admin.
IMPORT_EXPORT_USE_TRANSACTIONS = True
# The spreadsheets staff use: Excel and CSV, not the developers' yaml, json, tsv or html.
from import_export.formats.base_formats import CSV, XLSX  # noqa: E402 - plain classes, no Django needed

IMPORT_EXPORT_FORMATS = [XLSX, CSV]
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# How long a POS idempotency key is remembered.
IDEMPOTENCY_KEY_TTL_DAYS = env.int("IDEMPOTENCY_KEY_TTL_DAYS", default=7)
# Last-used time of a terminal is written at most this often (seconds).
TERMINAL_TOUCH_INTERVAL = env.int("TERMINAL_TOUCH_INTERVAL", default=60)
# The POS writes' few long statements are prepared once per database connection (core.sql.execute_prepared);
# false behind a connection pooler that does not keep prepared statements (PgBouncer in transaction mode < 1.21).
POS_PREPARED_STATEMENTS = env.bool("POS_PREPARED_STATEMENTS", default=True)
# Seconds a web process keeps a terminal found by its POS key; a key rotated or a terminal switched off in
# another process stops working within this time (0: look the key up on every request).
TERMINAL_KEY_CACHE_SECONDS = env.int("TERMINAL_KEY_CACHE_SECONDS", default=5)

# Settlement: a month closes only when every store-day with card payments has its POS file reconciled (turn off
# where some POS systems send no daily file); a card with no movement for this many days is dormant in the ageing.
SETTLEMENT_CLOSE_NEEDS_POS_FILES = env.bool("SETTLEMENT_CLOSE_NEEDS_POS_FILES", default=True)
SETTLEMENT_DORMANT_DAYS = env.int("SETTLEMENT_DORMANT_DAYS", default=365)

# Missed receipts: a purchase sent without a member may be claimed for one this many days after the sale.
PURCHASE_CLAIM_WINDOW_DAYS = env.int("PURCHASE_CLAIM_WINDOW_DAYS", default=30)

# Webhooks (integrations): each process rereads the active subscriptions at most this often (seconds); a POST
# waits at most WEBHOOK_TIMEOUT_SECONDS; a failed delivery is tried again after 30 s, then twice as long each time
# up to an hour, and is marked failed once WEBHOOK_RETRY_HOURS have passed since its first try; delivered events
# are forgotten after WEBHOOK_RETENTION_DAYS.
WEBHOOK_SUBSCRIPTIONS_CACHE_SECONDS = env.float("WEBHOOK_SUBSCRIPTIONS_CACHE_SECONDS", default=5.0)
# A process hands a subscription to the worker at most this often (seconds; 0: after every commit): the running
# sender picks up what was written meanwhile, and the minute's sweep what it missed.
WEBHOOK_PUBLISH_INTERVAL_SECONDS = env.float("WEBHOOK_PUBLISH_INTERVAL_SECONDS", default=0.25)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_RETRY_FIRST_SECONDS = env.int("WEBHOOK_RETRY_FIRST_SECONDS", default=30)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=3600)
WEBHOOK_RETRY_HOURS = env.int("WEBHOOK_RETRY_HOURS", default=24)
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)

# Reports: a run's workbook is kept this many days, then the nightly prune removes the file (the run's row stays);
# scheduled reports mail their recipients a link under SITE_URL. Mail goes to files under var/mail unless
# EMAIL_BACKEND says otherwise (production: django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST ...).
REPORTS_RETENTION_DAYS = env.int("REPORTS_RETENTION_DAYS", default=90)
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env.path("EMAIL_FILE_PATH", default=BASE_DIR / "var" / "mail")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="reports@localhost")

DEMO_ADMIN_USERNAME = env.str("DEMO_ADMIN_USERNAME", default="admin")
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="admin12345")

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
# HTTPS (docs/deployment.md, section 5). All off by default so `make run` serves plain http on 127.0.0.1.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# TLS ends at the reverse proxy: a request is https when the proxy says so in X-Forwarded-Proto. Only safe when the
# proxy sets that header itself on every request (overwriting what a client sent); otherwise anyone can claim https.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL_HEADER", default=False) else None
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# History is for reading; a change goes through the screens and their services.
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
AXES_VERBOSE = False

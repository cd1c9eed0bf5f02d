"""Settings for the chat backend, driven by the environment (12-factor).

With no environment set the server runs embedded: SQLite and Channels'
in-memory layer, one process. ``DATABASE_URL`` and ``REDIS_URL`` switch to
Postgres and channels-redis ("services mode"). See README.md for the table.
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

_DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or (_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is false: set DJANGO_SECRET_KEY to a random string of at least 50 characters "
        '(python -c "import secrets; print(secrets.token_urlsafe(64))").'
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else [])
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", CORS_ALLOWED_ORIGINS)
# CORS for the API only (not the admin); no credentials: the API authenticates with
# the Authorization header (allowed by django-cors-headers' default headers), never cookies.
CORS_URLS_REGEX = r"^/(graphql/?|api/.*)$"
CORS_ALLOW_CREDENTIALS = False

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "strawberry_django",
    "chat",
]

MIDDLEWARE = [
    "backend.logging.RequestIdMiddleware",  # outermost: every log line of the request carries its id
    "backend.logging.RequestLogMiddleware",  # one JSON line per request, full duration
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backend.request_threads.OneThreadMiddleware",  # innermost: the chain above runs in one thread
]

ROOT_URLCONF = "backend.urls"
ASGI_APPLICATION = "backend.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Seconds a database connection is kept for the next request or WebSocket operation.
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 300)
# HTTP requests' sync threads kept idle for the next requests, each with its
# connection (backend/request_threads.py); more concurrent requests make more threads.
REQUEST_THREADS_IDLE = env_int("REQUEST_THREADS_IDLE", 8)
if DATABASE_URL:
    # Connections are kept between requests: HTTP requests borrow their sync thread
    # (and so its connection) from a pool (backend/request_threads.py), and the
    # WebSocket side runs its database work in one thread of its own. A thread
    # retired from the pool closes its connections first, so they do not pile up
    # to Postgres' max_connections.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=DATABASE_CONN_MAX_AGE, conn_health_checks=True)
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A database that does not answer fails fast (SERVICE_UNAVAILABLE) instead of hanging workers.
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options.setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 3))
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent async writers: WAL lets readers run beside a writer, IMMEDIATE
    # takes the write lock at BEGIN (no lock upgrade deadlock), and the busy
    # timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = DATABASE_CONN_MAX_AGE
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The test database is a file like the real one, not shared-cache memory:
    # there, concurrent writers fail at once with "database table is locked"
    # instead of waiting on the busy timeout, so race tests could not run.
    # Named per process so that parallel test runs never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"chat-test-{os.getpid()}.sqlite3"),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "chat.User"

# --- Channel layer and cache ----------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A Redis that does not answer fails fast instead of hanging; a connection that a
    # Redis restart broke is replaced on first use (one retry). The read timeout must
    # outlast the sorted-set layer's 5 s blocking receive (BZPOPMIN).
    _redis_host = {
        "address": REDIS_URL,
        "socket_connect_timeout": 2,
        "socket_timeout": 20,
        "retry_on_error": [RedisConnectionError],
    }
    # CHANNEL_LAYER=pubsub (default): channels-redis' pub/sub layer. A process is in a
    # group once (chat.realtime.Hub), so an event costs one PUBLISH whatever the number
    # of processes and subscribers. CHANNEL_LAYER=redis: the sorted-set layer, with
    # bounded per-channel queues (CHANNEL_LAYER_CAPACITY) and a waiting pool
    # (CHANNEL_LAYER_POOL_SIZE), at about a dozen Redis commands per event per process
    # of group and queue bookkeeping. Both are at-most-once: the event table and the
    # periodic check repair loss, and the Hub's heartbeat notices a layer that stopped
    # delivering.
    CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "pubsub")
    _redis_db = (urlsplit(REDIS_URL).path.strip("/") or "0").split("/")[0]
    if CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                # Pub/sub channels are shared by every database of a Redis server: the
                # default prefix names the database, so that deployments (or test runs)
                # on other database numbers never hear each other's events.
                "CONFIG": {
                    "hosts": [_redis_host],
                    "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", f"chat.{_redis_db}"),
                },
            }
        }
    elif CHANNEL_LAYER == "redis":
        CHANNEL_LAYERS = {
            "default": {
                # schema/live/channels_redis_adapter.py: a pool that waits when busy.
                "BACKEND": "schema.live.channels_redis_adapter.WaitingRedisChannelLayer",
                "CONFIG": {
                    "pool_size": env_int("CHANNEL_LAYER_POOL_SIZE", 200),
                    "hosts": [_redis_host],
                    # The default capacity (100) drops group messages silently under
                    # fan-out load; resume repairs loss, but we avoid causing it.
                    "capacity": env_int("CHANNEL_LAYER_CAPACITY", 5000),
                    "expiry": 60,
                    # Long-lived processes must not fall out of their groups.
                    "group_expiry": 7 * 24 * 3600,
                    "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "chat"),
                },
            }
        }
    else:
        raise ImproperlyConfigured("CHANNEL_LAYER must be 'pubsub' or 'redis'.")
    CACHES = {
        "default": {
            "BACKEND": "backend.redis_cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "chat"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2, "retry_on_error": [RedisConnectionError]},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "schema.live.channels_adapter.LinearInMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNEL_LAYER_CAPACITY", 5000), "expiry": 60},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "chat"}}

# --- Auth -------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# JWT: a separate key may be given; by default the tokens are signed with a key
# derived from SECRET_KEY (see chat/tokens.py).
JWT_SECRET_KEY = os.environ.get("JWT_SECRET_KEY", "")
JWT_ALGORITHM = "HS256"
JWT_ISSUER = os.environ.get("JWT_ISSUER", "chat-backend")
JWT_EXPIRATION = timedelta(seconds=env_int("JWT_EXPIRATION", 300))
JWT_REFRESH_EXPIRATION = timedelta(seconds=env_int("JWT_REFRESH_EXPIRATION", 7 * 24 * 3600))
# Failed log-ins per name tried (username or email) and client address.
LOGIN_THROTTLE_ATTEMPTS = env_int("LOGIN_THROTTLE_ATTEMPTS", 5)
LOGIN_THROTTLE_WINDOW = env_int("LOGIN_THROTTLE_WINDOW", 300)
# Failed log-ins per client address (higher: many people may share one address behind NAT).
LOGIN_THROTTLE_ADDRESS_ATTEMPTS = env_int("LOGIN_THROTTLE_ADDRESS_ATTEMPTS", 20)
# An account is never locked; past this many failures from all addresses in the
# window, each attempt at it waits LOGIN_SLOWDOWN_STEP seconds more per failure,
# at most LOGIN_SLOWDOWN_MAX.
LOGIN_SLOWDOWN_AFTER = env_int("LOGIN_SLOWDOWN_AFTER", 10)
LOGIN_SLOWDOWN_STEP = float(os.environ.get("LOGIN_SLOWDOWN_STEP", "0.2"))
LOGIN_SLOWDOWN_MAX = float(os.environ.get("LOGIN_SLOWDOWN_MAX", "2"))

# --- Chat limits --------------------------------------------------------------------
MAX_USERS_IN_ROOM = env_int("MAX_USERS_IN_ROOM", 1000)
# How many users one user may block.
MAX_BLOCKED_USERS = env_int("MAX_BLOCKED_USERS", 1000)
# Where the web chat is reachable, for invite links (e.g. https://chat.example.com);
# empty: the host of the request that made the invite.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "")
ROOM_CREATION_STAFF_ONLY = env_bool("ROOM_CREATION_STAFF_ONLY", False)
MESSAGE_MAX_LENGTH = 4000
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
# In rooms with more members, only owners and admins may notify everyone with @room or @here.
MENTION_EVERYONE_MAX_MEMBERS = env_int("MENTION_EVERYONE_MAX_MEMBERS", 50)
# Longest accepted searchMessages query, in characters.
SEARCH_QUERY_MAX_LENGTH = 200
EVENT_RETENTION = timedelta(days=env_int("EVENT_RETENTION_DAYS", 30))
# Real time: how often each process compares its subscriptions' positions with the
# rooms' latest event (repairs a dropped last event) and checks that its channel on
# the layer still answers; how long an event that arrived before its predecessor
# waits for it before the gap is filled from the event table. Presence entries
# expire unless an open socket's heartbeat refreshes them (a crashed process leaves
# nobody online for long).
REALTIME_CHECK_INTERVAL = float(os.environ.get("REALTIME_CHECK_INTERVAL", "5"))
REALTIME_REORDER_WAIT = float(os.environ.get("REALTIME_REORDER_WAIT", "0.2"))
# Each live event is rendered once per distinct selection (and viewer, where the
# selection depends on it) and written to every subscriber's socket. Off, every
# subscription executes its selection on each event through Strawberry's own path:
# slower, the same frames; for comparing and for telling a fault of the sharing apart.
GRAPHQL_SHARED_EVENT_RESULTS = env_bool("GRAPHQL_SHARED_EVENT_RESULTS", True)
PRESENCE_HEARTBEAT = env_int("PRESENCE_HEARTBEAT", 30)
# Shutdown: on SIGTERM readiness fails at once, new sockets are refused and the open
# ones are closed (1012) in batches over this many seconds; then the process exits.
SHUTDOWN_DRAIN_SECONDS = float(os.environ.get("SHUTDOWN_DRAIN_SECONDS", "10"))
# GET /metrics (Prometheus): with a token, scrapes send "Authorization: Bearer <token>";
# without one only loopback clients are answered.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# OpenTelemetry tracing (backend/tracing.py): on when an exporter is named or an OTLP
# endpoint is set; the SDK reads its other OTEL_* variables itself.
OTEL_SDK_DISABLED = env_bool("OTEL_SDK_DISABLED", False)
OTEL_TRACES_EXPORTER = os.environ.get("OTEL_TRACES_EXPORTER", "")
OTEL_EXPORTER_OTLP_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
OTEL_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "") or "chat-backend"
TRACING_ENABLED = not OTEL_SDK_DISABLED and (
    OTEL_TRACES_EXPORTER.strip().lower() not in ("", "none")
    or bool(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
)
PRESENCE_TTL = env_int("PRESENCE_TTL", 90)

# Rate limits: action -> (attempts, window in seconds), per user (per client
# address for anonymous callers). Cache-backed, so they hold across processes.
# Every write that fans out to a room has one (chat.ratelimit.throttle): each
# costs a frame on every member's socket, so one looping account costs everyone.
RATE_LIMITS = {
    "register": (env_int("RATE_LIMIT_REGISTER", 10), 3600),
    "send_message": (env_int("RATE_LIMIT_SEND_MESSAGE", 30), 10),
    "set_typing": (env_int("RATE_LIMIT_SET_TYPING", 20), 10),
    "upload": (env_int("RATE_LIMIT_UPLOAD", 20), 60),
    "create_room": (env_int("RATE_LIMIT_CREATE_ROOM", 10), 60),
    "edit_message": (env_int("RATE_LIMIT_EDIT_MESSAGE", 20), 60),
    "delete_message": (env_int("RATE_LIMIT_DELETE_MESSAGE", 30), 60),
    # joinRoom, leaveRoom and joinByInvite share one budget: a join/leave loop counts twice per cycle.
    "membership": (env_int("RATE_LIMIT_MEMBERSHIP", 10), 60),
    # Room management by owners, admins and staff: updateRoom, deleteRoom, addMember,
    # removeMember, setMemberRole, bans, mutes, slow mode.
    "manage_room": (env_int("RATE_LIMIT_MANAGE_ROOM", 30), 60),
    "mark_read": (env_int("RATE_LIMIT_MARK_READ", 60), 60),
    "reaction": (env_int("RATE_LIMIT_REACTION", 30), 10),
    "pin": (env_int("RATE_LIMIT_PIN", 20), 60),
    "invite": (env_int("RATE_LIMIT_INVITE", 10), 60),
    "report": (env_int("RATE_LIMIT_REPORT", 10), 3600),
}

# --- Files --------------------------------------------------------------------------
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "/media/"  # never served publicly: downloads go through chat.views
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
MAX_FILES_PER_MESSAGE = env_int("MAX_FILES_PER_MESSAGE", 10)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
# Images are decoded to make their thumbnail. JPEG decodes at up to 1/8 scale;
# other formats decode whole, holding width x height x 4 bytes: this bounds that
# (16 MP: 64 MiB), and at most IMAGE_DECODE_CONCURRENCY decodes run at once per
# process; an upload waits IMAGE_DECODE_WAIT seconds for its turn, then answers
# SERVICE_UNAVAILABLE.
IMAGE_DECODE_MAX_PIXELS = env_int("IMAGE_DECODE_MAX_PIXELS", 16_000_000)
IMAGE_DECODE_CONCURRENCY = env_int("IMAGE_DECODE_CONCURRENCY", 2)
IMAGE_DECODE_WAIT = float(os.environ.get("IMAGE_DECODE_WAIT", "10"))
UPLOAD_ALLOWED_TYPES = env_list(
    "UPLOAD_ALLOWED_TYPES",
    ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "application/zip"],
)
# Django spools uploads above this size to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
STORAGES = {
    "default": {"BACKEND": os.environ.get("STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")},
    # Hashed, compressed files from `collectstatic` in production; served from
    # the apps' folders directly in development (no collectstatic needed).
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# S3-compatible object storage (django-storages) as soon as a bucket is named.
# Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the instance's role
# (boto3's usual chain). The bucket stays private: bytes go out through
# chat.views after an access check, never from a public bucket URL.
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,  # MinIO, R2, Ceph...
            "location": os.environ.get("AWS_LOCATION", ""),  # a key prefix inside the bucket
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
# Uploads never attached to a message are deleted after this (manage.py prune_uploads).
UPLOAD_PRUNE_AFTER = timedelta(hours=env_int("UPLOAD_PRUNE_AFTER_HOURS", 24))
# Lifetime of the signed download URLs given out in `downloadUrl` / `thumbnailUrl`.
DOWNLOAD_URL_MAX_AGE = env_int("DOWNLOAD_URL_MAX_AGE", 300)

# --- Static, i18n -------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- GraphQL --------------------------------------------------------------------------
GRAPHIQL_ENABLED = env_bool("GRAPHIQL_ENABLED", DEBUG)
GRAPHQL_INTROSPECTION = env_bool("GRAPHQL_INTROSPECTION", DEBUG)
# Abuse limits (OWASP GraphQL cheat sheet); see schema/limits.py. Batching is
# off: one operation per HTTP request (GRAPHQL_MAX_OPERATIONS > 1 enables it).
GRAPHQL_MAX_DEPTH = env_int("GRAPHQL_MAX_DEPTH", 10)
GRAPHQL_MAX_TOKENS = env_int("GRAPHQL_MAX_TOKENS", 2000)
GRAPHQL_MAX_ALIASES = env_int("GRAPHQL_MAX_ALIASES", 15)
GRAPHQL_MAX_OPERATIONS = env_int("GRAPHQL_MAX_OPERATIONS", 1)
# Query cost budget (schema/cost.py): the objects an operation may return, estimated
# from its list sizes before it runs; 0 switches the limit off. Lists with no page
# argument and no known bound count as GRAPHQL_COST_LIST_SIZE items.
GRAPHQL_MAX_COST = env_int("GRAPHQL_MAX_COST", 100000)
GRAPHQL_COST_LIST_SIZE = env_int("GRAPHQL_COST_LIST_SIZE", PAGE_SIZE_DEFAULT)
# Persisted queries (schema/persisted.py): Apollo's automatic persisted queries, stored
# in the cache for GRAPHQL_PERSISTED_QUERY_TTL seconds; GRAPHQL_TRUSTED_DOCUMENTS names a
# manifest (scripts/trusted_documents.py) and then only its documents run.
GRAPHQL_PERSISTED_QUERIES = env_bool("GRAPHQL_PERSISTED_QUERIES", True)
GRAPHQL_PERSISTED_QUERY_TTL = env_int("GRAPHQL_PERSISTED_QUERY_TTL", 7 * 24 * 3600)
GRAPHQL_TRUSTED_DOCUMENTS = os.environ.get("GRAPHQL_TRUSTED_DOCUMENTS", "")
# Cache-Control max-age of anonymous GET answers without errors (CDNs); 0: not cached.
GRAPHQL_GET_MAX_AGE = env_int("GRAPHQL_GET_MAX_AGE", 0)
# WebSocket limits; see schema/live/consumer.py.
WS_CONNECTION_INIT_TIMEOUT = env_int("WS_CONNECTION_INIT_TIMEOUT", 10)  # seconds
WS_MAX_SUBSCRIPTIONS = env_int("WS_MAX_SUBSCRIPTIONS", 20)  # in-flight operations per socket
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024)  # incoming frame; bigger closes 1009
WS_MAX_BUFFERED_BYTES = env_int("WS_MAX_BUFFERED_BYTES", 1024 * 1024)  # unsent outgoing bytes; more closes 4429
# A client cut off for not reading has this long to read what was queued and the 4429
# close frame; then its TCP connection is aborted (the buffer is freed).
WS_SLOW_CLIENT_CLOSE_SECONDS = float(os.environ.get("WS_SLOW_CLIENT_CLOSE_SECONDS", "5"))
WS_MAX_QUEUED_MESSAGES = env_int("WS_MAX_QUEUED_MESSAGES", 100)  # inbound frames not yet handled; more closes 4429
STRAWBERRY_DJANGO = {
    "FIELD_DESCRIPTION_FROM_HELP_TEXT": True,
    "TYPE_DESCRIPTION_FROM_MODEL_DOCSTRING": True,
    "PAGINATION_DEFAULT_LIMIT": PAGE_SIZE_DEFAULT,
}

# --- Security (production) --------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^(healthz|livez|readyz|metrics)$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Every formatter redacts passwords and tokens (backend/logging.py). Request and
# operation logs are JSON lines; LOG_FORMAT=json makes every log JSON.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "backend.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "backend.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": os.environ.get("LOG_FORMAT", "plain")},
        "json": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "chat.request": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "chat.operation": {"handlers": ["json"], "level": "INFO", "propagate": False},
        # Strawberry logs every client error at ERROR with the document's source
        # (which may hold inline passwords); schema/errors.py logs the real bugs.
        "strawberry.execution": {"level": "CRITICAL"},
    },
}

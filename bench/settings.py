"""Settings of the benchmark server: the project's own, plus the bench routes.

Only what a benchmark must change is changed here, all of it visible:
- the URLconf adds the baseline view, the bench publisher and the profiler switch;
- DEBUG is off (Django would otherwise keep every SQL query in memory);
- rate limits are lifted for the senders (they would cap the offered load);
- ``BENCH_CHANNEL_LAYER=pubsub`` swaps channels-redis' layer for the pub/sub one,
  to compare them (services mode only).
"""

import os

from backend.settings import *  # noqa: F403
from backend.settings import CHANNEL_LAYERS, RATE_LIMITS, REDIS_URL

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# BENCH_SHARED_EVENTS=0 measures the subscription path without shared event results.
GRAPHQL_SHARED_EVENT_RESULTS = os.environ.get("BENCH_SHARED_EVENTS", "1") != "0"

# BENCH_CHECK_INTERVAL overrides the realtime engine's periodic repair check
# (REALTIME_CHECK_INTERVAL), to see what the check costs under load.
if os.environ.get("BENCH_CHECK_INTERVAL"):
    REALTIME_CHECK_INTERVAL = float(os.environ["BENCH_CHECK_INTERVAL"])

RATE_LIMITS = {action: (10**9, window) for action, (_, window) in RATE_LIMITS.items()}

if REDIS_URL and os.environ.get("BENCH_CHANNEL_LAYER") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]},
        }
    }

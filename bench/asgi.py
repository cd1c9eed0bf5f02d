"""The benchmark server: ``daphne bench.asgi:application``.

The real application (``backend.asgi.application``) serves everything, as in
production; WebSockets under ``/bench/ws/<room>/`` go to the baseline consumer
instead, on the same daphne and the same channel layer.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from asgiref.sync import markcoroutinefunction
from channels.routing import URLRouter
from django.urls import re_path

from backend.asgi import application as project_application
from bench.consumers import BaselineConsumer

if os.environ.get("BENCH_PRESENCE", "0") != "1":
    # Presence is published when a user's first socket opens, to every room they
    # belong to: a thousand members connecting to one room make a million
    # PresenceChanged deliveries before the first message (O(N^2)). The message
    # scenarios switch that broadcast off; BENCH_PRESENCE=1 keeps it.
    from chat.services import presence

    presence._publish_presence = lambda user, online: None

baseline_router = URLRouter([re_path(r"^bench/ws/(?P<room_id>\d+)/$", BaselineConsumer.as_asgi())])


@markcoroutinefunction  # for daphne's ASGI 3 check
def application(scope, receive, send):
    # Hands back the routed application's coroutine rather than awaiting it: an
    # ``async def`` here would hold a frame per socket, on both sides.
    if scope["type"] == "websocket" and scope["path"].startswith("/bench/ws/"):
        return baseline_router(scope, receive, send)
    return project_application(scope, receive, send)

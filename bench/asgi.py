"""The benchmark server: ``daphne bench.asgi:application``.

The real application (``backend.asgi.application``) serves everything, as in
production; WebSockets under ``/bench/ws/<room>/`` go to the baseline consumer
instead, on the same daphne and the same channel layer.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from channels.routing import URLRouter
from django.urls import re_path

from backend.asgi import application as project_application
from bench.consumers import BaselineConsumer

baseline_router = URLRouter([re_path(r"^bench/ws/(?P<room_id>\d+)/$", BaselineConsumer.as_asgi())])


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"].startswith("/bench/ws/"):
        return await baseline_router(scope, receive, send)
    return await project_application(scope, receive, send)

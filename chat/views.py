"""Plain Django views: the health check and the REST shim."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    probe = {"type": "healthz.probe", "id": uuid.uuid4().hex}
    await layer.send(channel, probe)
    received = await layer.receive(channel)
    if received.get("id") != probe["id"]:
        raise RuntimeError("channel layer returned another message")


@require_GET
async def healthz(request):
    """200 when the database and the channel layer answer, 503 with details otherwise."""
    checks = {}
    for name, check in (("database", sync_to_async(_check_database)), ("channel_layer", _check_channel_layer)):
        try:
            await asyncio.wait_for(check(), timeout=3)
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks[name] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )

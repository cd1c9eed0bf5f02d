"""Bench-only HTTP views: the plain history floor and profiler switches (time and memory).
Mounted by ``bench.urls`` only, never by the project."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import threading
import tracemalloc

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import access, tokens
from chat.errors import ChatError
from chat.models import Message


def _caller(request):
    return access.require_user(tokens.user_from_authorization(request.headers.get("Authorization")))


@require_GET
def messages_page(request, room_id: int):
    """The floor for ``messages(roomId, first)``: the same JWT, the same access
    rule, the newest ``first`` messages with their senders from ``.values()``."""
    try:
        user = _caller(request)
        access.access_room(user, room_id, member=True)
    except ChatError as error:
        return JsonResponse({"error": error.code}, status=403)
    first = min(int(request.GET.get("first", 50)), 100)
    rows = list(
        Message.objects.filter(room_id=room_id)
        .order_by("-created_at", "-id")
        .values("id", "text", "created_at", "edited_at", "deleted_at", "sender_id", "sender__username")[: first + 1]
    )
    return JsonResponse({"messages": rows[:first], "has_next_page": len(rows) > first})


_profiler: dict = {}


@csrf_exempt
@require_POST
async def profile(request):
    """``{"action": "start"}`` profiles the event-loop thread (where the
    subscription path runs) until ``{"action": "stop", "path": ...}``, which
    writes the pstats file and answers the top of the cumulative profile."""
    body = json.loads(request.body)
    if threading.current_thread() is not threading.main_thread():
        return JsonResponse({"error": "not on the event-loop thread"}, status=500)
    if body["action"] == "start":
        _profiler["p"] = cProfile.Profile()
        _profiler["p"].enable()
        return JsonResponse({"ok": True})
    prof = _profiler.pop("p")
    prof.disable()
    if body.get("path"):
        prof.dump_stats(body["path"])
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats(body.get("sort", "cumulative")).print_stats(int(body.get("lines", 60)))
    return HttpResponse(out.getvalue(), content_type="text/plain")


_memory: dict = {}


@csrf_exempt
@require_POST
async def memory_profile(request):
    """``{"action": "start"}`` starts tracing Python allocations; ``{"action": "stop"}``
    answers what was allocated since and is still held, grouped by ``group``
    (``filename`` or ``lineno``), largest first, and stops tracing. Tracing costs
    memory of its own: use it to see where memory goes, not how much."""
    body = json.loads(request.body)
    if body["action"] == "start":
        tracemalloc.start(int(body.get("frames", 1)))
        _memory["before"] = tracemalloc.take_snapshot()
        return JsonResponse({"ok": True})
    after = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    tracemalloc.stop()
    stats = after.compare_to(_memory.pop("before"), body.get("group", "filename"))
    total = sum(stat.size_diff for stat in stats)
    lines = [f"held since start: {total / 1024:.0f} KiB", *(str(stat) for stat in stats[: int(body.get("lines", 40))])]
    return HttpResponse("\n".join(lines), content_type="text/plain")

"""Plain Django views: the probes and the REST shim."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import uuid
from functools import wraps

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DatabaseError, connection
from django.http import FileResponse, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from chat import access, lifecycle, openapi, tokens
from chat.errors import (
    NUL_CHARACTER_MESSAGE,
    BadUserInput,
    ChatError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    is_nul_character_error,
)
from chat.models import Attachment, Message, User
from chat.services import attachments, avatars

logger = logging.getLogger(__name__)


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
async def livez(request):
    """Liveness: the process and its event loop answer (no database, no Redis: a
    backing service that blinks must not get every replica restarted)."""
    return JsonResponse({"status": "ok"})


@require_GET
async def readyz(request):
    """Readiness: 200 when the database and the channel layer answer and the process
    is not draining; 503 with the failed checks otherwise."""
    checks = {}
    for name, check in (("database", sync_to_async(_check_database)), ("channel_layer", _check_channel_layer)):
        try:
            await asyncio.wait_for(check(), timeout=3)
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks[name] = f"error: {type(error).__name__}"
    checks["shutdown"] = "draining" if lifecycle.draining() else "ok"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# The original health check, kept for the load balancers and scripts that use it.
healthz = readyz


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@require_GET
def metrics(request):
    """``GET /metrics``: this process's metrics in Prometheus' text format. With
    ``METRICS_TOKEN`` set a scrape sends ``Authorization: Bearer <token>``; without
    it only loopback clients are answered (the address is ``REMOTE_ADDR``, which
    daphne behind the proxy takes from ``X-Real-IP``, as everywhere else)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        allowed = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    else:
        allowed = _loopback(request.META.get("REMOTE_ADDR"))
    if not allowed:
        return JsonResponse({"error": {"code": "FORBIDDEN", "message": "Not allowed to read the metrics."}}, status=403)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@require_GET
def openapi_document(request):
    """``GET /api/openapi.json``: the OpenAPI 3.1 description of the REST shim."""
    return JsonResponse(openapi.document(), json_dumps_params={"indent": 1})


# --- REST shim ------------------------------------------------------------------------
# Plain Django views for clients that cannot speak the GraphQL multipart request
# spec. They authenticate with the same JWT (``Authorization: Bearer <token>``)
# and call the same services as GraphQL. Only the token authenticates: the
# session cookie (the admin's) is never read, which is why these views need no
# CSRF token (a cross-site form cannot set an Authorization header).

# Room for multipart boundaries, part headers and the text fields of a request.
MULTIPART_OVERHEAD = 64 * 1024


def _global_id(type_name: str, pk: int | None) -> str | None:
    """The relay global ID GraphQL gives the same object (base64 of ``Type:pk``)."""
    if pk is None:
        return None
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def _database_id(value: str | None, type_name: str) -> int | None:
    """The database id in a numeric id or a global ID of ``type_name``; ``None`` for
    anything else (which then answers like a missing object)."""
    value = (value or "").strip()
    # ASCII digits only: str.isdigit() also accepts "¹" or "٣", which int() refuses or reads.
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    kind, _, pk = decoded.partition(":")
    return int(pk) if kind == type_name and pk.isascii() and pk.isdigit() else None


def _error_response(error: ChatError) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": error.code, "message": error.message, **error.extensions}}, status=error.http_status
    )
    if isinstance(error, RateLimited):
        response["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        response["WWW-Authenticate"] = 'Bearer realm="chat"'
    return response


def api_view(*methods: str):
    """A JSON API view: only ``methods``, the caller from the JWT (``None`` without
    one) passed as ``actor``, domain errors as ``{"error": {"code", "message"}}``."""

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = _error_response(MethodNotAllowed(f"Use {' or '.join(methods)}."))
                response["Allow"] = ", ".join(methods)
                return response
            try:
                actor = tokens.user_from_authorization(request.headers.get("Authorization"))
                # The caller is whoever the token says, never the session's user (logs read it).
                request.user = actor or AnonymousUser()
                return view(request, actor, *args, **kwargs)
            except ChatError as error:
                return _error_response(error)
            except RequestDataTooBig:
                return _error_response(PayloadTooLarge("The request's form fields are too large."))
            except (TooManyFilesSent, TooManyFieldsSent, MultiPartParserError) as error:
                return _error_response(BadUserInput(f"Malformed multipart body: {type(error).__name__}."))
            except DatabaseError:
                logger.warning("database error in %s", request.path, exc_info=True)
                return _error_response(ServiceUnavailable())
            except Exception as error:
                if is_nul_character_error(error):
                    return _error_response(BadUserInput(NUL_CHARACTER_MESSAGE))
                logger.exception("unexpected error in %s", request.path)
                return _error_response(ChatError())

        return wrapper

    return decorator


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any other path under ``/api/`` (an unknown route, or an id no route matches,
    such as one with a newline): the API's JSON 404, not Django's HTML page."""
    return _error_response(NotFound("No such API endpoint."))


class MethodNotAllowed(ChatError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405
    default_message = "Method not allowed."


def _refuse_oversized_body(request, max_files: int) -> None:
    """413 by ``Content-Length`` before the multipart body is parsed. (daphne has
    read the body already; the proxy in front refuses it before it is sent.)"""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.MAX_UPLOAD_BYTES * max_files + MULTIPART_OVERHEAD
    if length > limit:
        raise PayloadTooLarge(
            f"The request is {length} bytes; files are at most {settings.MAX_UPLOAD_BYTES} bytes each.",
            maxBytes=settings.MAX_UPLOAD_BYTES,
        )


def attachment_json(attachment: Attachment, viewer: User) -> dict:
    """An attachment as JSON, with the field names GraphQL uses."""
    return {
        "id": _global_id("Attachment", attachment.pk),
        "databaseId": attachment.pk,
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "downloadUrl": attachments.download_path(viewer, attachment, attachments.DOWNLOAD),
        "thumbnailUrl": attachments.download_path(viewer, attachment, attachments.THUMBNAIL),
        "createdAt": attachment.created_at.isoformat(),
    }


def message_json(message: Message, viewer: User) -> dict:
    """A message as JSON, with the field names GraphQL uses."""
    sender = message.sender
    return {
        "id": _global_id("Message", message.pk),
        "databaseId": message.pk,
        "roomId": _global_id("Room", message.room_id),
        "sender": sender
        and {"id": _global_id("User", sender.pk), "username": sender.username, "displayName": sender.display_name},
        "text": message.text,
        "clientId": message.client_id,
        "replyToId": _global_id("Message", message.reply_to_id),
        "createdAt": message.created_at.isoformat(),
        "attachments": [attachment_json(a, viewer) for a in message.attachments.order_by("pk")],
    }


@api_view("POST")
def upload_attachment(request, actor):
    """``POST /api/uploads/`` (multipart ``file``): 201 with the stored, unattached upload."""
    access.require_user(actor)
    _refuse_oversized_body(request, max_files=1)
    uploads = request.FILES.getlist("file")
    if len(uploads) != 1:
        raise BadUserInput("Send exactly one file in the `file` field.", fields={"file": ["Exactly one file."]})
    attachment = attachments.store_upload(actor, uploads[0])
    return JsonResponse(attachment_json(attachment, actor), status=201)


@api_view("POST")
def post_message(request, actor, room_id: str):
    """``POST /api/rooms/<roomId>/messages/`` (multipart ``text``, ``file``..., ``clientId``,
    ``replyToId``): 201 with the message, delivered to subscribers like any other."""
    access.require_user(actor)
    room_pk = _database_id(room_id, "Room")
    if room_pk is None:
        raise NotFound("Room not found.")
    _refuse_oversized_body(request, max_files=settings.MAX_FILES_PER_MESSAGE)
    reply_to = request.POST.get("replyToId") or None
    reply_to_pk = _database_id(reply_to, "Message") if reply_to else None
    if reply_to and reply_to_pk is None:
        raise BadUserInput("Unknown message.", fields={"replyToId": ["Not in this room."]})
    message = attachments.send_message_with_files(
        actor,
        room_pk,
        request.POST.get("text", ""),
        uploads=request.FILES.getlist("file"),
        client_id=request.POST.get("clientId") or None,
        reply_to_id=reply_to_pk,
    )
    return JsonResponse(message_json(message, actor), status=201)


class StreamedFileResponse(FileResponse):
    """A ``FileResponse`` that also streams under ASGI.

    Django serves a response with a synchronous iterator under ASGI by reading
    it whole into memory first (``StreamingHttpResponse.__aiter__``); this one
    reads one block at a time in a worker thread instead.
    """

    block_size = 64 * 1024

    async def __aiter__(self):
        chunks = iter(self.streaming_content)
        while (chunk := await sync_to_async(next, thread_sensitive=False)(chunks, None)) is not None:
            yield chunk


def _serve(request, actor, attachment_id: str, kind: str):
    pk = _database_id(attachment_id, "Attachment")
    download = attachments.open_download(actor, pk, kind, signature=request.GET.get("sig"))
    response = StreamedFileResponse(
        download.file,
        as_attachment=not download.inline,
        filename=download.name,
        content_type=download.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser were talked into rendering the bytes, they run no script.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Referrer-Policy"] = "no-referrer"
    # Access is checked on every request: shared caches must not keep a copy.
    response["Cache-Control"] = "private, no-store"
    return response


@api_view("GET")
def download_attachment(request, actor, attachment_id: str):
    """``GET /api/attachments/<id>/download``: the file, for members of its message's
    room (and its uploader while unattached), with a JWT or a signed ``?sig=``. Anyone
    else gets the same 404 as for a missing file."""
    return _serve(request, actor, attachment_id, attachments.DOWNLOAD)


@api_view("GET")
def download_thumbnail(request, actor, attachment_id: str):
    """``GET /api/attachments/<id>/thumbnail``: an image's thumbnail, like ``download``."""
    return _serve(request, actor, attachment_id, attachments.THUMBNAIL)


@api_view("GET")
def download_avatar(request, actor, avatar_id: str, size: str):
    """``GET /api/avatars/<id>/<size>``: a user's or room's picture (size 64 or 256), for
    whoever may see that user or room, with a JWT or a signed ``?sig=``."""
    avatar = avatars.open_avatar(actor, avatar_id, size, signature=request.GET.get("sig"))
    response = StreamedFileResponse(avatar.file, content_type=avatar.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response

"""Uploads: store a file, hand its bytes to the people allowed to see them, prune
what was never attached.

An upload belongs to its uploader until ``send_message`` attaches it; from then
on it belongs to the message's room. Files live in Django's default storage
(local disk, or S3 through django-storages by configuration alone); a row never
points at a missing file, and a refused upload leaves nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from chat import access, files, ratelimit
from chat.errors import BadUserInput, NotFound, PayloadTooLarge
from chat.models import Attachment, Message, User
from chat.services import messages
from chat.services.rooms import parse_id

logger = logging.getLogger(__name__)

DOWNLOAD = "download"
THUMBNAIL = "thumbnail"
_SIGNING_SALT = "chat.attachment-download"


def store_upload(actor: User, uploaded_file) -> Attachment:
    """Store ``uploaded_file`` (a Django ``File``: ``UploadedFile`` from a request) as
    an unattached upload of ``actor``.

    Raises ``RateLimited`` past ``RATE_LIMITS["upload"]``, ``PayloadTooLarge`` above
    ``MAX_UPLOAD_BYTES`` or ``MAX_IMAGE_PIXELS``, ``UnsupportedMediaType`` for a type
    outside ``UPLOAD_ALLOWED_TYPES`` and ``BadUserInput`` for an empty file or a
    corrupt image. Everything is checked before a byte is stored.
    """
    actor = access.require_user(actor)
    ratelimit.throttle("upload", actor)
    if uploaded_file is None or not callable(getattr(uploaded_file, "read", None)):
        raise BadUserInput("A file is required.", fields={"file": ["This field is required."]})
    size = files.file_size(uploaded_file)
    if size > settings.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"The file is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES} bytes.",
            maxBytes=settings.MAX_UPLOAD_BYTES,
        )
    if size == 0:
        raise BadUserInput("The file is empty.", fields={"file": ["The file is empty."]})
    inspected = files.inspect_upload(uploaded_file, getattr(uploaded_file, "name", None))

    attachment = Attachment(
        uploader=actor,
        name=inspected.name,
        content_type=inspected.content_type,
        size=inspected.size,
        width=inspected.width,
        height=inspected.height,
    )
    stored: list[str] = []
    try:
        uploaded_file.seek(0)
        # The stored name is ours, not the client's: the display name lives in the row.
        attachment.file.save(f"file.{inspected.extension}", uploaded_file, save=False)
        stored.append(attachment.file.name)
        if inspected.thumbnail is not None:
            attachment.thumbnail.save(
                f"thumbnail.{inspected.thumbnail_extension}", ContentFile(inspected.thumbnail), save=False
            )
            stored.append(attachment.thumbnail.name)
        attachment.save()
    except BaseException:
        files.delete_stored(stored)
        raise
    return attachment


def send_message_with_files(
    actor: User,
    room_id,
    text: str = "",
    uploads=(),
    client_id=None,
    reply_to_id=None,
    attachment_ids=(),
    thread_id=None,
) -> Message:
    """Store ``uploads`` and send them, with ``attachment_ids`` (earlier uploads), in one
    message through ``send_message`` (so subscribers get it like any other).

    Membership and the number of files are checked before anything is stored; if
    storing any file or sending fails, the files stored here are deleted again. A
    retry with a ``client_id`` already used returns the first message and keeps none
    of the new files.
    """
    actor = access.require_user(actor)
    uploads = list(uploads or ())
    if len(uploads) + len(list(attachment_ids or ())) > settings.MAX_FILES_PER_MESSAGE:
        raise BadUserInput(
            f"At most {settings.MAX_FILES_PER_MESSAGE} files per message.",
            fields={"file": [f"At most {settings.MAX_FILES_PER_MESSAGE} files."]},
        )
    room = access.access_room(actor, parse_id(room_id, "Room"), member=True)
    stored: list[int] = []
    try:
        for upload in uploads:
            stored.append(store_upload(actor, upload).pk)
        message = messages.send_message(
            actor,
            room.pk,
            text,
            client_id=client_id,
            reply_to_id=reply_to_id,
            thread_id=thread_id,
            attachment_ids=[*(attachment_ids or ()), *stored],
        )
    except BaseException:
        discard_uploads(actor, stored)
        raise
    attached = set(Attachment.objects.filter(pk__in=stored, message=message).values_list("pk", flat=True))
    discard_uploads(actor, [pk for pk in stored if pk not in attached])
    return message


def stored_names(attachments) -> list[str]:
    """The storage names of the files (and thumbnails) of ``attachments``."""
    return [name for a in attachments for name in (a.file.name, a.thumbnail.name) if name]


def delete_files_on_commit(names: list[str]) -> None:
    """Delete stored files once the transaction that deleted their rows commits
    (a rolled-back deletion keeps them)."""
    if names:
        transaction.on_commit(partial(files.delete_stored, list(names)))


def discard_uploads(actor: User, attachment_ids) -> int:
    """Delete ``actor``'s own unattached uploads among ``attachment_ids``, with their files."""
    with transaction.atomic():
        doomed = list(
            Attachment.objects.select_for_update().filter(
                pk__in=list(attachment_ids), uploader=actor, message__isnull=True
            )
        )
        Attachment.objects.filter(pk__in=[a.pk for a in doomed], message__isnull=True).delete()
        delete_files_on_commit(stored_names(doomed))
    return len(doomed)


def prune_unattached_uploads(older_than: timedelta | None = None, batch_size: int = 500) -> int:
    """Delete uploads never attached to a message and older than ``older_than``
    (default ``UPLOAD_PRUNE_AFTER``), with their files. Returns how many went.

    Rows are locked and re-checked (``message IS NULL``) in the deleting
    transaction, so an upload that ``send_message`` attaches meanwhile stays.
    """
    cutoff = timezone.now() - (older_than if older_than is not None else settings.UPLOAD_PRUNE_AFTER)
    total = 0
    while True:
        with transaction.atomic():
            doomed = list(
                Attachment.objects.select_for_update()
                .filter(message__isnull=True, created_at__lt=cutoff)
                .order_by("pk")[:batch_size]
            )
            if not doomed:
                return total
            Attachment.objects.filter(pk__in=[a.pk for a in doomed], message__isnull=True).delete()
            delete_files_on_commit(stored_names(doomed))
        total += len(doomed)


# --- Downloads ---------------------------------------------------------------


def download_signature(user: User, attachment_id: int, kind: str = DOWNLOAD) -> str:
    """A short-lived signature that lets ``user`` fetch one attachment's bytes (or
    thumbnail) without an ``Authorization`` header, e.g. from an ``<img>`` tag.

    It names the user, the attachment, the kind and the user's token version, and
    expires after ``DOWNLOAD_URL_MAX_AGE``; access is checked again at download.
    """
    return signing.TimestampSigner(salt=_SIGNING_SALT).sign_object(
        {"u": user.pk, "a": int(attachment_id), "k": kind, "v": user.token_version}, compress=False
    )


def download_path(user: User, attachment: Attachment, kind: str = DOWNLOAD) -> str | None:
    """The signed URL path of ``attachment``'s bytes (or thumbnail) for ``user``; ``None``
    for an anonymous user, and for the thumbnail of a file that is not an image (every
    image has one, which lets this work on attachments rebuilt from event snapshots)."""
    if not getattr(user, "is_authenticated", False) or (kind == THUMBNAIL and attachment.width is None):
        return None
    return f"/api/attachments/{attachment.pk}/{kind}?sig={download_signature(user, attachment.pk, kind)}"


def _signed_user(signature: str, attachment_id: int, kind: str) -> User | None:
    try:
        claims = signing.TimestampSigner(salt=_SIGNING_SALT).unsign_object(
            signature, max_age=settings.DOWNLOAD_URL_MAX_AGE
        )
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("a") != attachment_id or claims.get("k") != kind:
        return None
    user = User.objects.filter(pk=claims.get("u"), is_active=True).first()
    if user is None or user.token_version != claims.get("v"):
        return None
    return user


@dataclass(frozen=True)
class Download:
    """An open stored file and how to present it."""

    file: FieldFile
    name: str
    content_type: str
    size: int | None
    inline: bool


def open_download(actor: User | None, attachment_id, kind: str = DOWNLOAD, signature: str | None = None) -> Download:
    """Open the bytes (``kind="download"``) or thumbnail of an attachment for a caller
    identified by ``actor`` (from a JWT) or by a ``signature`` from ``download_path``.

    Only members of the message's room, and the uploader while it is unattached,
    get it; everyone else, anonymous callers and bad or expired signatures get the
    same ``NotFound`` as a missing attachment.
    """
    missing = NotFound("Attachment not found.")
    try:
        attachment_id = int(attachment_id)
    except (TypeError, ValueError):
        raise missing from None
    user = actor if actor is not None and actor.is_authenticated else None
    if user is None and signature:
        user = _signed_user(signature, attachment_id, kind)
    if user is None or not user.is_active:
        raise missing
    attachment = access.attachments_visible_to(user).filter(pk=attachment_id).first()
    if attachment is None:
        raise missing
    if kind == THUMBNAIL:
        stored, content_type, size = attachment.thumbnail, None, None
        if not stored:
            raise missing
        content_type = "image/png" if stored.name.endswith(".png") else "image/jpeg"
        name = f"{attachment.name.rsplit('.', 1)[0]}-thumbnail.{stored.name.rsplit('.', 1)[-1]}"
    else:
        stored, content_type, size, name = attachment.file, attachment.content_type, attachment.size, attachment.name
    try:
        stored.open("rb")
    except (FileNotFoundError, OSError):
        logger.error("attachment %s: stored file %s is missing", attachment.pk, stored.name)
        raise missing from None
    return Download(
        file=stored, name=name, content_type=content_type, size=size, inline=files.is_inline_type(content_type)
    )

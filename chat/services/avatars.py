"""Avatars: the pictures of users and rooms.

A picture arrives like any file, through the upload pipeline (``uploadAttachment``
or ``POST /api/uploads/``: size limit, sniffed type, verified image). Setting it
as an avatar consumes that upload: its pixels are cropped to squares of each
size in ``Avatar.SIZES`` and re-encoded, the upload and its files go, and the
avatar it replaces goes too. Avatars are served through short-lived signed URLs
to whoever may see the user or room (``access.avatar_visible_to``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import transaction

from chat import access, files
from chat.errors import BadUserInput, NotFound
from chat.models import Attachment, Avatar, User

# ``avatar_id`` left out of an update: the picture stays as it is.
KEEP = object()
_SIGNING_SALT = "chat.avatar"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


@dataclass(frozen=True)
class PreparedAvatar:
    upload_id: int
    images: dict[int, bytes]
    content_type: str


def _refused() -> BadUserInput:
    return BadUserInput(
        "avatarId must be your own image upload, not attached to a message.",
        fields={"avatarId": ["Unknown or already used upload."]},
    )


def prepare(actor: User, upload_id) -> PreparedAvatar | None:
    """Check and re-encode the upload ``upload_id`` (``None``: clear the avatar), before
    any transaction: decoding an image takes a while and needs no lock.

    Someone else's upload, an attached one or a missing one is ``BadUserInput``
    (the same answer for each, so ids cannot be probed); a file that is not an
    image is ``UnsupportedMediaType``.
    """
    if upload_id is None:
        return None
    try:
        pk = int(upload_id)
    except (TypeError, ValueError):
        raise _refused() from None
    upload = Attachment.objects.filter(pk=pk, uploader=actor, message__isnull=True).first()
    if upload is None:
        raise _refused()
    try:
        upload.file.open("rb")
    except OSError:
        raise _refused() from None
    try:
        images, content_type = files.square_images(upload.file, upload.content_type, Avatar.SIZES)
    finally:
        upload.file.close()
    return PreparedAvatar(upload_id=upload.pk, images=images, content_type=content_type)


def store(actor: User, prepared: PreparedAvatar | None) -> Avatar | None:
    """Store a prepared avatar and consume its upload. Precondition: inside the
    transaction that sets it on the user or room (its files are removed again if
    anything fails, and the upload's files go only once it commits)."""
    if prepared is None:
        return None
    upload = Attachment.objects.select_for_update().filter(pk=prepared.upload_id, message__isnull=True).first()
    if upload is None:  # attached to a message or pruned since it was prepared
        raise _refused()
    extension = _EXTENSIONS[prepared.content_type]
    avatar = Avatar(content_type=prepared.content_type, uploaded_by=actor)
    saved: list[str] = []
    try:
        avatar.small.save(f"avatar-64.{extension}", ContentFile(prepared.images[64]), save=False)
        saved.append(avatar.small.name)
        avatar.large.save(f"avatar-256.{extension}", ContentFile(prepared.images[256]), save=False)
        saved.append(avatar.large.name)
        avatar.save()
    except BaseException:
        files.delete_stored(saved)
        raise
    upload_files = [name for name in (upload.file.name, upload.thumbnail.name) if name]
    Attachment.objects.filter(pk=upload.pk).delete()
    _delete_files_on_commit(upload_files)
    return avatar


def discard(avatar_id: int | None) -> None:
    """Delete a replaced avatar with its files. Precondition: inside the replacing transaction."""
    if avatar_id is None:
        return
    avatar = Avatar.objects.filter(pk=avatar_id).first()
    if avatar is None:
        return
    names = [avatar.small.name, avatar.large.name]
    avatar.delete()
    _delete_files_on_commit([n for n in names if n])


def _delete_files_on_commit(names: list[str]) -> None:
    # A rolled-back change keeps its files.
    if names:
        transaction.on_commit(partial(files.delete_stored, names))


# --- Signed URLs and serving ---------------------------------------------------------------


def clean_size(size) -> int:
    if size is None:
        return max(Avatar.SIZES)
    if size not in Avatar.SIZES:
        sizes = " or ".join(str(s) for s in Avatar.SIZES)
        raise BadUserInput(f"Avatar sizes are {sizes}.", fields={"size": [f"Use {sizes}."]})
    return int(size)


def avatar_path(viewer: User, avatar_id: int | None, size: int) -> str | None:
    """The signed URL path of an avatar at ``size`` for ``viewer`` (``None``: no avatar, or anonymous).

    The caller has checked that ``viewer`` sees the user or room; the view checks again."""
    if avatar_id is None or not getattr(viewer, "is_authenticated", False):
        return None
    signature = signing.TimestampSigner(salt=_SIGNING_SALT).sign_object(
        {"u": viewer.pk, "a": int(avatar_id), "s": size, "v": viewer.token_version}, compress=False
    )
    return f"/api/avatars/{avatar_id}/{size}?sig={signature}"


@dataclass(frozen=True)
class AvatarFile:
    file: object
    content_type: str


def open_avatar(actor: User | None, avatar_id, size, signature: str | None = None) -> AvatarFile:
    """Open an avatar image for ``actor`` (from a JWT) or the user a ``signature`` names.

    Anyone who may not see a user or room showing this avatar, and bad or expired
    signatures, get the same ``NotFound`` as a missing avatar.
    """
    missing = NotFound("Avatar not found.")
    try:
        avatar_id, size = int(avatar_id), int(size)
    except (TypeError, ValueError):
        raise missing from None
    if size not in Avatar.SIZES:
        raise missing
    user = actor if actor is not None and actor.is_authenticated else None
    if user is None and signature:
        user = _signed_user(signature, avatar_id, size)
    if user is None or not user.is_active or not access.avatar_visible_to(user, avatar_id):
        raise missing
    avatar = Avatar.objects.filter(pk=avatar_id).first()
    if avatar is None:
        raise missing
    stored = avatar.file_for(size)
    try:
        stored.open("rb")
    except OSError:
        raise missing from None
    return AvatarFile(file=stored, content_type=avatar.content_type)


def _signed_user(signature: str, avatar_id: int, size: int) -> User | None:
    try:
        claims = signing.TimestampSigner(salt=_SIGNING_SALT).unsign_object(
            signature, max_age=settings.DOWNLOAD_URL_MAX_AGE
        )
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("a") != avatar_id or claims.get("s") != size:
        return None
    user = User.objects.filter(pk=claims.get("u"), is_active=True).first()
    if user is None or user.token_version != claims.get("v"):
        return None
    return user

from __future__ import annotations

import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import Attachment
from chat.services import attachments
from schema.context import viewer


@strawberry_django.type(Attachment, name="Attachment")
class AttachmentType(relay.Node):
    """A file attached to a message, visible to the members of its room (and to its uploader before it is sent)."""

    name: str = strawberry_django.field(description="The sanitized original file name.")
    content_type: str = strawberry_django.field(description="The MIME type sniffed from the file's content.")
    size: int = strawberry_django.field(description="Size in bytes.")
    width: int | None = strawberry_django.field(description="Image width in pixels; null for other files.")
    height: int | None = strawberry_django.field(description="Image height in pixels; null for other files.")

    @strawberry_django.field(
        only=["id"],
        description=(
            "Where to fetch the file, relative to this server: a signed URL for you alone that works without an "
            "Authorization header (e.g. in `<img src>`) and expires after a few minutes (ask again for a fresh "
            "one). Your access is checked again when it is used. Images are served inline, other files as "
            "downloads. With your JWT, `/api/attachments/<id>/download` works too."
        ),
    )
    def download_url(self, root: Attachment, info: Info) -> str | None:
        return attachments.download_path(viewer(info), root, attachments.DOWNLOAD)

    @strawberry_django.field(
        only=["id", "width"],
        description=(
            "Like `downloadUrl`, for a thumbnail of at most 320x320 pixels (JPEG or PNG); null if not an image."
        ),
    )
    def thumbnail_url(self, root: Attachment, info: Info) -> str | None:
        return attachments.download_path(viewer(info), root, attachments.THUMBNAIL)

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Attachment], info: Info, **kwargs) -> QuerySet[Attachment]:
        return queryset & access.attachments_visible_to(viewer(info))

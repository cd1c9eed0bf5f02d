from __future__ import annotations

import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import Attachment
from schema.context import viewer


@strawberry_django.type(Attachment, name="Attachment")
class AttachmentType(relay.Node):
    """A file attached to a message, visible to the members of its room (and to its uploader before it is sent)."""

    name: str = strawberry_django.field(description="The sanitized original file name.")
    content_type: str = strawberry_django.field(description="The MIME type sniffed from the file's content.")
    size: int = strawberry_django.field(description="Size in bytes.")
    width: int | None = strawberry_django.field(description="Image width in pixels; null for other files.")
    height: int | None = strawberry_django.field(description="Image height in pixels; null for other files.")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Attachment], info: Info, **kwargs) -> QuerySet[Attachment]:
        return queryset & access.attachments_visible_to(viewer(info))

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.file_uploads import Upload
from strawberry.types import Info

from chat.services import attachments
from schema.attachments.types import AttachmentType
from schema.context import signed_in_user


@strawberry.type
class AttachmentMutations:
    @strawberry_django.mutation(
        description=(
            "Upload a file (GraphQL multipart request spec; send your JWT in the Authorization header) and get it "
            "back unattached; then pass its `id` in `sendMessage(input: {attachmentIds})`. Only you can see it "
            "until then; uploads never attached are deleted after a day. The type is sniffed from the content "
            "and must be an allowed one; images are verified and get a thumbnail. Errors: UNAUTHENTICATED, "
            "PAYLOAD_TOO_LARGE (file above the size limit, image above the pixel limit), UNSUPPORTED_MEDIA_TYPE, "
            "BAD_USER_INPUT (empty file, corrupt image), RATE_LIMITED."
        )
    )
    def upload_attachment(self, info: Info, file: Upload) -> AttachmentType:
        return attachments.store_upload(signed_in_user(info), file)

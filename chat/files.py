"""What an uploaded file really is, and what we keep of it.

Nothing the client says about a file is trusted: the type is sniffed from the
content (magic numbers via ``filetype``, then a strict UTF-8 check for plain
text), the name is reduced to a harmless display name whose extension matches
the sniffed type, and images are parsed by Pillow, bounded in pixels before
anything is decoded, verified, and re-encoded into a small thumbnail without a
full-size copy, a bounded number at a time.

These functions only inspect; ``chat.services.attachments`` decides and stores.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

from chat.errors import BadUserInput, PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType

logger = logging.getLogger(__name__)

TEXT_PLAIN = "text/plain"
OCTET_STREAM = "application/octet-stream"
NAME_MAX_LENGTH = 120
THUMBNAIL_SIZE = (320, 320)
EXIF_ORIENTATION = 0x0112
CHUNK_SIZE = 64 * 1024

# Extensions a name may keep for each sniffed type; the first is the one given
# to a name whose extension does not match.
EXTENSIONS = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "image/bmp": ("bmp",),
    "image/tiff": ("tif", "tiff"),
    "application/pdf": ("pdf",),
    "application/zip": ("zip",),
    TEXT_PLAIN: ("txt", "text", "md", "csv", "log"),
}

# Image types Pillow parses, by the format name Pillow gives them. Pillow is
# only ever asked to open the sniffed format, never to guess.
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}

# Characters that mean something to file systems or shells, replaced in names.
_UNSAFE_CHARACTERS = re.compile(r'[<>:"|?*;`$]')
_WHITESPACE = re.compile(r"\s+")
# Control characters (Unicode category Cc) other than tab, line feed, form feed
# and carriage return: their presence means the file is not plain text.
_TEXT_FORBIDDEN_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class InspectedFile:
    """What an upload turned out to be."""

    content_type: str
    name: str
    extension: str
    size: int
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    thumbnail_extension: str | None = None

    @property
    def is_image(self) -> bool:
        return self.width is not None


def file_size(fileobj) -> int:
    """The size of an open file: its ``size`` attribute, or measured by seeking."""
    size = getattr(fileobj, "size", None)
    if size is not None:
        return int(size)
    position = fileobj.tell()
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(position)
    return size


def _is_plain_text(fileobj) -> bool:
    """Whether the whole file is UTF-8 text without NULs or other control characters."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    fileobj.seek(0)
    try:
        while chunk := fileobj.read(CHUNK_SIZE):
            text = decoder.decode(chunk)
            if _TEXT_FORBIDDEN_CONTROLS.search(text):
                return False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        fileobj.seek(0)
    return True


def sniff_content_type(fileobj) -> str:
    """The type of the content: magic numbers first, then plain text, else octet-stream."""
    fileobj.seek(0)
    head = fileobj.read(8192)
    fileobj.seek(0)
    if not head:
        return OCTET_STREAM
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    return TEXT_PLAIN if _is_plain_text(fileobj) else OCTET_STREAM


def extensions_for(content_type: str) -> tuple[str, ...]:
    if content_type in EXTENSIONS:
        return EXTENSIONS[content_type]
    kind = filetype.get_type(mime=content_type)
    return (kind.extension,) if kind is not None else ("bin",)


def sanitize_name(raw_name: str | None, content_type: str) -> tuple[str, str]:
    """A display name and its extension: no folders, no control or format characters
    (which also removes right-to-left overrides that disguise extensions), bounded in
    length, with an extension that matches ``content_type``."""
    name = str(raw_name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = _UNSAFE_CHARACTERS.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    allowed = extensions_for(content_type)
    extension = extension.lower()
    if extension not in allowed:
        extension = allowed[0]
    stem = stem.strip(" .")[: NAME_MAX_LENGTH - len(extension) - 1].rstrip(" .") or "file"
    return f"{stem}.{extension}", extension


# At most IMAGE_DECODE_CONCURRENCY images decode at once in this process: each
# decode holds up to IMAGE_DECODE_MAX_PIXELS x 4 bytes, and uploads come in
# parallel (threads, several requests), so the bound on memory is this product.
_decodes = threading.BoundedSemaphore(max(1, settings.IMAGE_DECODE_CONCURRENCY))

# EXIF orientation -> the transposition that shows the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _too_many_pixels(width: int, height: int, limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The image has too many pixels ({width}x{height}); the limit {what} is {limit}.", maxPixels=limit
    )


def _image_info(fileobj, content_type: str) -> tuple[int, int, bytes, str]:
    """Width and height (as displayed) and a thumbnail of a verified image.

    Raises ``PayloadTooLarge`` for more pixels than ``MAX_IMAGE_PIXELS``, or
    than ``IMAGE_DECODE_MAX_PIXELS`` at the scale the image must be decoded at
    (both checked from the header, before any pixel is decoded: a small file
    can describe a huge image), ``BadUserInput`` for an image Pillow cannot read
    whole, and ``ServiceUnavailable`` when too many decodes are waiting.
    """
    pillow_format = PILLOW_FORMATS[content_type]
    corrupt = BadUserInput("The image is corrupt or truncated.", fields={"file": ["The image cannot be read."]})
    try:
        fileobj.seek(0)
        with Image.open(fileobj, formats=[pillow_format]) as image:
            width, height = image.size
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise _too_many_pixels(width, height, settings.MAX_IMAGE_PIXELS, "for images")
            image.verify()
        # verify() leaves the image unusable: open again to decode it.
        fileobj.seek(0)
        with Image.open(fileobj, formats=[pillow_format]) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            # The size as displayed: EXIF orientations 5 to 8 turn the image on its side.
            if orientation in {5, 6, 7, 8}:
                width, height = height, width
            # JPEG decodes at a reduced scale (still the whole stream, so truncation
            # is caught): a 12 MP photo's thumbnail costs a fraction of a full decode.
            # Other formats decode whole, so their size is bounded by a lower limit.
            image.draft(image.mode, THUMBNAIL_SIZE)
            decoded_width, decoded_height = image.size
            if decoded_width * decoded_height > settings.IMAGE_DECODE_MAX_PIXELS:
                raise _too_many_pixels(width, height, settings.IMAGE_DECODE_MAX_PIXELS, "for this format")
            if not _decodes.acquire(timeout=settings.IMAGE_DECODE_WAIT):
                raise ServiceUnavailable("Too many images are being processed; try again shortly.")
            try:
                image.load()
                thumbnail, extension = _thumbnail(image, _UPRIGHT.get(orientation))
            finally:
                _decodes.release()
    except Image.DecompressionBombError:
        raise PayloadTooLarge(
            f"The image has too many pixels; the limit is {settings.MAX_IMAGE_PIXELS}.",
            maxPixels=settings.MAX_IMAGE_PIXELS,
        ) from None
    except (UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError, Image.DecompressionBombWarning):
        raise corrupt from None
    finally:
        fileobj.seek(0)
    return width, height, thumbnail, extension


def _thumbnail(image: Image.Image, upright: Image.Transpose | None) -> tuple[bytes, str]:
    """At most ``THUMBNAIL_SIZE``, never enlarged: PNG when transparent, JPEG otherwise.

    Never copies the decoded image at full size: it is shrunk first (in place,
    with ``reduce`` steps), and only the small result is converted and turned upright.
    """
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
    if image.mode in {"RGB", "RGBA", "L", "LA"}:
        image.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS, reducing_gap=2.0)
    else:
        # Palette, 1-bit, CMYK, 16-bit...: resampling needs another mode, and converting
        # the full image would copy it at up to 4 bytes a pixel. Pick pixels down to
        # twice the thumbnail first, then convert that and resample it properly.
        scale = min(1.0, 2 * THUMBNAIL_SIZE[0] / image.width, 2 * THUMBNAIL_SIZE[1] / image.height)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.NEAREST)
    thumb = image.convert("RGBA" if has_alpha else "RGB")
    thumb.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    if upright is not None:
        thumb = thumb.transpose(upright)
    out = io.BytesIO()
    if has_alpha:
        thumb.save(out, format="PNG", optimize=True)
        return out.getvalue(), "png"
    thumb.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "jpg"


def square_images(fileobj, content_type: str, sizes: Iterable[int]) -> tuple[dict[int, bytes], str]:
    """Square pictures of a stored, already verified image: turned upright, cropped to
    the centre, scaled to each of ``sizes`` and re-encoded (PNG when transparent, JPEG
    otherwise), so nothing of the uploaded file but its pixels is kept. Returns the
    encoded images by size and their content type.

    Decoding follows the upload's rules (``_image_info``): the decode limit at the
    scale the image is decoded at, one of ``IMAGE_DECODE_CONCURRENCY`` decode slots,
    and no full-size copy: the picture is shrunk in place before it is converted."""
    pillow_format = PILLOW_FORMATS.get(content_type)
    if pillow_format is None:
        raise UnsupportedMediaType("An avatar must be an image.", contentType=content_type)
    sizes = sorted(sizes)
    largest = (sizes[-1], sizes[-1])
    try:
        fileobj.seek(0)
        with Image.open(fileobj, formats=[pillow_format]) as image:
            width, height = image.size
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise _too_many_pixels(width, height, settings.MAX_IMAGE_PIXELS, "for images")
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            image.draft(image.mode, largest)
            if image.size[0] * image.size[1] > settings.IMAGE_DECODE_MAX_PIXELS:
                raise _too_many_pixels(width, height, settings.IMAGE_DECODE_MAX_PIXELS, "for this format")
            if not _decodes.acquire(timeout=settings.IMAGE_DECODE_WAIT):
                raise ServiceUnavailable("Too many images are being processed; try again shortly.")
            try:
                image.load()
                has_alpha = image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
                # Crop to the centre square first, then shrink: the copies that
                # follow are at most twice the largest size, never the full image.
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                square = image.crop((left, top, left + side, top + side))
                scale = 2 * largest[0] / side
                if scale < 1:
                    square = square.resize((2 * largest[0], 2 * largest[1]), Image.Resampling.BOX)
                square = square.convert("RGBA" if has_alpha else "RGB")
                upright = _UPRIGHT.get(orientation)
                if upright is not None:
                    square = square.transpose(upright)
            finally:
                _decodes.release()
            result = {}
            for size in sizes:
                out = io.BytesIO()
                scaled = square.resize((size, size), Image.Resampling.LANCZOS)
                if has_alpha:
                    scaled.save(out, format="PNG", optimize=True)
                else:
                    scaled.save(out, format="JPEG", quality=88, optimize=True)
                result[size] = out.getvalue()
    except Image.DecompressionBombError:
        raise PayloadTooLarge("The image has too many pixels.", maxPixels=settings.MAX_IMAGE_PIXELS) from None
    except (UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError, Image.DecompressionBombWarning):
        raise BadUserInput("The image is corrupt or truncated.", fields={"avatarId": ["Cannot be read."]}) from None
    finally:
        fileobj.seek(0)
    return result, "image/png" if has_alpha else "image/jpeg"


def inspect_upload(fileobj, client_name: str | None) -> InspectedFile:
    """Sniff, check against ``UPLOAD_ALLOWED_TYPES``, name, and for images verify and
    thumbnail. Raises ``UnsupportedMediaType`` (415) for a type not allowed, including
    an executable named like an image, ``BadUserInput`` for a corrupt image and
    ``PayloadTooLarge`` for too many pixels."""
    size = file_size(fileobj)
    content_type = sniff_content_type(fileobj)
    if content_type not in settings.UPLOAD_ALLOWED_TYPES:
        raise UnsupportedMediaType(
            f"Files of type {content_type} are not allowed.",
            contentType=content_type,
            allowedTypes=list(settings.UPLOAD_ALLOWED_TYPES),
        )
    name, extension = sanitize_name(client_name, content_type)
    if content_type not in PILLOW_FORMATS:
        return InspectedFile(content_type=content_type, name=name, extension=extension, size=size)
    width, height, thumbnail, thumbnail_extension = _image_info(fileobj, content_type)
    return InspectedFile(
        content_type=content_type,
        name=name,
        extension=extension,
        size=size,
        width=width,
        height=height,
        thumbnail=thumbnail,
        thumbnail_extension=thumbnail_extension,
    )


def is_inline_type(content_type: str) -> bool:
    """Whether a browser may show the file in place: verified images only."""
    return content_type in PILLOW_FORMATS


def delete_stored(names: Iterable[str]) -> None:
    """Delete files from the default storage, best effort: a file that cannot be
    deleted is logged (an orphan costs disk, not correctness)."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not delete stored file %s", name, exc_info=True)

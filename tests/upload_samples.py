"""Files for upload tests, made in the test run: real images from Pillow, an ELF
header, text. Nothing is read from disk."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 200
EXE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def image_bytes(width: int = 800, height: int = 600, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A real image with some content (a gradient), so encoders do real work."""
    image = Image.new(mode, (width, height), color=0 if mode in {"1", "L"} else (30, 120, 200))
    if mode == "RGB":
        for x in range(0, width, max(1, width // 16)):
            image.paste((x * 255 // max(width, 1), 80, 160), (x, 0, min(width, x + 8), height))
    if mode == "RGBA":
        image.paste((255, 0, 0, 0), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def bomb_png(width: int = 8000, height: int = 6000) -> bytes:
    """A small file that decodes to ``width * height`` pixels (48 million by default)."""
    return image_bytes(width, height, "PNG", mode="1")


def corrupt_png() -> bytes:
    """A PNG whose header is fine but whose data is cut off and garbled."""
    data = image_bytes(200, 200, "PNG")
    return data[:60] + b"\x00garbage" * 10


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)

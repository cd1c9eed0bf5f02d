"""chat/files.py: what a file really is, whatever the client says about it."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from chat import files
from chat.errors import BadUserInput, PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from tests.upload_samples import ELF_HEADER, EXE_HEADER, bomb_png, corrupt_png, image_bytes


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in its header and holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def jpeg_rotated(width: int, height: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` whose EXIF says: rotate 90 degrees to display."""
    image = Image.new("RGB", (width, height), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


class TestSniffing:
    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (image_bytes(20, 10, "PNG"), "image/png"),
            (image_bytes(20, 10, "JPEG"), "image/jpeg"),
            (image_bytes(20, 10, "GIF"), "image/gif"),
            (image_bytes(20, 10, "WEBP"), "image/webp"),
            (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/pdf"),
            (b"PK\x03\x04" + b"\x00" * 60, "application/zip"),
            (ELF_HEADER, "application/x-executable"),
            (EXE_HEADER, "application/x-msdownload"),
            ("Grüße, world\n\tindented\r\n".encode(), "text/plain"),
            (b"\xef\xbb\xbfwith a byte order mark", "text/plain"),
            (b"nul \x00 inside", "application/octet-stream"),
            (b"escape \x1b[31m red", "application/octet-stream"),
            (b"\xff\xfe not utf-8 \xc3", "application/octet-stream"),
            (b"", "application/octet-stream"),
        ],
    )
    def test_the_type_comes_from_the_content(self, content, expected):
        assert files.sniff_content_type(io.BytesIO(content)) == expected

    def test_text_is_checked_to_the_end_not_only_the_head(self):
        content = b"a" * (files.CHUNK_SIZE * 3) + b"\x00"
        assert files.sniff_content_type(io.BytesIO(content)) == "application/octet-stream"

    def test_a_utf8_character_split_across_chunks_is_still_text(self):
        content = b"a" * (files.CHUNK_SIZE - 1) + "é".encode() + b"b"
        assert files.sniff_content_type(io.BytesIO(content)) == "text/plain"


class TestNames:
    @pytest.mark.parametrize(
        ("raw", "content_type", "expected"),
        [
            ("holiday.png", "image/png", "holiday.png"),
            ("Holiday.JPEG", "image/jpeg", "Holiday.jpeg"),
            ("../../etc/passwd", "text/plain", "passwd.txt"),
            ("C:\\Users\\me\\report.pdf", "application/pdf", "report.pdf"),
            ("photo.png", "image/jpeg", "photo.jpg"),  # the extension follows the content
            ("setup.exe", "image/png", "setup.png"),
            ("notes.html", "text/plain", "notes.txt"),
            ("README.md", "text/plain", "README.md"),
            ("invoice\u202egnp.exe", "image/png", "invoicegnp.png"),  # right-to-left override removed
            ("tab\there\nnewline\x00nul.png", "image/png", "tabherenewlinenul.png"),
            ('a<b>c:d"e|f?g*h;i`j$k.png', "image/png", "a_b_c_d_e_f_g_h_i_j_k.png"),
            ("  spaced   out  .png", "image/png", "spaced out.png"),
            (".htaccess", "text/plain", "htaccess.txt"),
            ("...", "image/png", "file.png"),
            ("", "application/zip", "file.zip"),
            (None, "application/pdf", "file.pdf"),
            ("noextension", "image/gif", "noextension.gif"),
            ("e\u0301te\u0301.png", "image/png", "été.png"),  # NFC
        ],
    )
    def test_sanitized(self, raw, content_type, expected):
        name, extension = files.sanitize_name(raw, content_type)
        assert name == expected
        assert extension == expected.rsplit(".", 1)[1]

    def test_length_is_bounded_and_the_extension_kept(self):
        name, _ = files.sanitize_name("x" * 500 + ".png", "image/png")
        assert len(name) == files.NAME_MAX_LENGTH
        assert name == "x" * (files.NAME_MAX_LENGTH - 4) + ".png"


class TestInspect:
    def test_an_image_is_measured_and_gets_a_jpeg_thumbnail_within_320(self):
        inspected = files.inspect_upload(io.BytesIO(image_bytes(800, 600, "PNG")), "p.png")
        assert (inspected.content_type, inspected.name, inspected.width, inspected.height) == (
            "image/png",
            "p.png",
            800,
            600,
        )
        assert inspected.thumbnail_extension == "jpg"
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert (thumb.format, thumb.size) == ("JPEG", (320, 240))

    def test_a_tall_image_is_bounded_by_its_height(self):
        inspected = files.inspect_upload(io.BytesIO(image_bytes(300, 1200, "JPEG")), "tall.jpg")
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (80, 320)

    def test_transparency_keeps_a_png_thumbnail(self):
        inspected = files.inspect_upload(io.BytesIO(image_bytes(1000, 500, "PNG", mode="RGBA")), "t.png")
        assert inspected.thumbnail_extension == "png"
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert (thumb.format, thumb.size, thumb.mode) == ("PNG", (320, 160), "RGBA")

    def test_small_images_are_not_enlarged(self):
        inspected = files.inspect_upload(io.BytesIO(image_bytes(100, 50, "GIF")), "small.gif")
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (100, 50)

    def test_exif_orientation_gives_the_displayed_size(self):
        inspected = files.inspect_upload(io.BytesIO(jpeg_rotated(400, 200)), "r.jpg")
        assert (inspected.width, inspected.height) == (200, 400)
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (160, 320)

    def test_a_non_image_has_no_dimensions_nor_thumbnail(self):
        inspected = files.inspect_upload(io.BytesIO(b"%PDF-1.4\n"), "doc.pdf")
        assert (inspected.content_type, inspected.width, inspected.thumbnail) == ("application/pdf", None, None)

    @pytest.mark.parametrize("content", [ELF_HEADER, EXE_HEADER, b"\x00\x01\x02binary"])
    def test_disguised_executables_are_refused_whatever_their_name(self, content):
        with pytest.raises(UnsupportedMediaType) as refused:
            files.inspect_upload(io.BytesIO(content), "cat.png")
        assert refused.value.http_status == 415

    def test_the_allow_list_is_a_setting(self, settings):
        settings.UPLOAD_ALLOWED_TYPES = ["image/png"]
        with pytest.raises(UnsupportedMediaType):
            files.inspect_upload(io.BytesIO(b"%PDF-1.4\n"), "doc.pdf")

    @pytest.mark.parametrize(
        "content",
        [corrupt_png(), image_bytes(300, 300, "JPEG")[:400], image_bytes(64, 64, "GIF")[:30]],
        ids=["garbled-png", "truncated-jpeg", "truncated-gif"],
    )
    def test_corrupt_images_are_bad_input(self, content):
        with pytest.raises(BadUserInput) as refused:
            files.inspect_upload(io.BytesIO(content), "broken.png")
        assert refused.value.http_status == 400

    def test_a_decompression_bomb_is_refused_not_warned(self):
        # 48 million pixels in a file of a few kilobytes; the limit is 40 million.
        content = bomb_png()
        assert len(content) < 100_000
        with pytest.raises(PayloadTooLarge) as refused:
            files.inspect_upload(io.BytesIO(content), "bomb.png")
        assert refused.value.extensions == {"maxPixels": 40_000_000}

    def test_the_pixel_bound_is_checked_from_the_header_before_decoding(self):
        with pytest.raises(PayloadTooLarge):
            files.inspect_upload(io.BytesIO(png_header_only(100_000, 100_000)), "huge.png")

    def test_pillows_own_bomb_error_is_a_refusal_too(self, settings, monkeypatch):
        settings.MAX_IMAGE_PIXELS = 10**12
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
        with pytest.raises(PayloadTooLarge):
            files.inspect_upload(io.BytesIO(image_bytes(100, 100, "PNG")), "p.png")

    def test_the_pixel_limit_is_a_setting(self, settings):
        settings.MAX_IMAGE_PIXELS = 800 * 600 - 1
        with pytest.raises(PayloadTooLarge):
            files.inspect_upload(io.BytesIO(image_bytes(800, 600, "PNG")), "p.png")
        settings.MAX_IMAGE_PIXELS = 800 * 600
        assert files.inspect_upload(io.BytesIO(image_bytes(800, 600, "PNG")), "p.png").width == 800


PEAK_MEMORY_SCRIPT = """
import io, resource, sys
import django
django.setup()
from chat import files
content = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    files.inspect_upload(io.BytesIO(content), "big.png")
    outcome = "accepted"
except Exception as error:
    outcome = type(error).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome, (after - before) * 1024)
"""


def peak_memory_of_inspecting(path) -> tuple[str, int]:
    """(outcome, bytes the process's peak memory grew by) for inspecting the file at
    ``path`` in a fresh interpreter (Pillow allocates outside Python's tracing)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.settings"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(path)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outcome, grown = done.stdout.split()
    return outcome, int(grown)


class TestDecodingCost:
    def test_a_small_png_of_huge_dimensions_is_refused_before_decoding(self):
        """151 KB, 6320x6320: under MAX_IMAGE_PIXELS, but decoding it whole would hold 160 MB."""
        content = image_bytes(6320, 6320, "PNG", mode="1")
        assert len(content) < 200_000 and 6320 * 6320 < 40_000_000
        started = time.monotonic()
        with pytest.raises(PayloadTooLarge) as refused:
            files.inspect_upload(io.BytesIO(content), "huge.png")
        assert refused.value.extensions == {"maxPixels": 16_000_000}
        assert time.monotonic() - started < 2  # the header only: nothing was decoded

    def test_a_big_jpeg_is_thumbnailed_from_a_reduced_decode(self, settings):
        settings.IMAGE_DECODE_MAX_PIXELS = 300_000  # far below the photo: only JPEG's draft makes it fit
        inspected = files.inspect_upload(io.BytesIO(image_bytes(2400, 1800, "JPEG")), "photo.jpg")
        assert (inspected.width, inspected.height) == (2400, 1800)
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (320, 240)

    def test_a_png_under_the_decode_limit_is_thumbnailed_without_full_size_copies(self, tmp_path):
        # 3900 x 3900 RGBA: 15.2 million pixels, 61 MB decoded. A full-size RGBA copy
        # (conversion, EXIF transposition) would add as much again.
        path = tmp_path / "big.png"
        path.write_bytes(image_bytes(3900, 3900, "PNG", mode="RGBA"))
        decoded = 3900 * 3900 * 4
        outcome, grown = peak_memory_of_inspecting(path)
        assert outcome == "accepted"
        assert grown < 1.5 * decoded, (
            f"peak memory grew by {grown / 2**20:.0f} MiB for {decoded / 2**20:.0f} MiB of pixels"
        )

    @pytest.mark.parametrize("mode", ["P", "1", "L", "RGB", "RGBA"])
    def test_every_mode_still_gets_a_thumbnail(self, mode):
        inspected = files.inspect_upload(io.BytesIO(image_bytes(1600, 800, "PNG", mode=mode)), "m.png")
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (320, 160)

    def test_rotated_photos_are_thumbnailed_upright(self):
        inspected = files.inspect_upload(io.BytesIO(jpeg_rotated(400, 200)), "r.jpg")
        with Image.open(io.BytesIO(inspected.thumbnail)) as thumb:
            assert thumb.size == (160, 320)

    def test_decodes_at_once_are_bounded_per_process(self, settings):
        """With every decode slot taken, an upload waits IMAGE_DECODE_WAIT, then is refused (503)."""
        settings.IMAGE_DECODE_WAIT = 0.2
        taken = 0
        while files._decodes.acquire(blocking=False):
            taken += 1
        try:
            assert taken == settings.IMAGE_DECODE_CONCURRENCY
            with pytest.raises(ServiceUnavailable) as refused:
                files.inspect_upload(io.BytesIO(image_bytes(400, 300, "PNG")), "p.png")
            assert refused.value.http_status == 503
        finally:
            for _ in range(taken):
                files._decodes.release()
        assert files.inspect_upload(io.BytesIO(image_bytes(400, 300, "PNG")), "p.png").width == 400

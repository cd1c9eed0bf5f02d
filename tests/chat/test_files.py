"""chat/files.py: what a file really is, whatever the client says about it."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from chat import files
from chat.errors import BadUserInput, PayloadTooLarge, UnsupportedMediaType
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

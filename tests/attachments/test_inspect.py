"""The content checks in-process, for what a gateway round trip does not show well."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from messaging.attachments import policy
from messaging.attachments.inspect import Checked, Refused, check_file, raw_pdf_facts
from messaging.attachments.policy import FileType, Limits
from tests.attachments import corpus


def checked(tmp_path: Path, data: bytes, ftype: FileType, limits: Limits | None = None) -> Checked:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return check_file(path, ftype, limits or policy.DEFAULT_LIMITS)


def refusal_of(tmp_path: Path, data: bytes, ftype: FileType) -> policy.Refusal:
    with pytest.raises(Refused) as caught:
        checked(tmp_path, data, ftype)
    return caught.value.refusal


def test_pdf_markers_are_found_across_read_chunks(tmp_path: Path) -> None:
    """A raw /JavaScript split over the 1 MiB boundary of two reads is still seen."""
    data = b"%PDF-1.7\n%" + b"a" * (1024 * 1024 - 15) + b"/JavaScript" + b"\n"
    path = tmp_path / "split.pdf"
    path.write_bytes(data)
    assert raw_pdf_facts(path).javascript


def test_pdf_is_kept_byte_for_byte(tmp_path: Path) -> None:
    """A PDF that passes is stored as sent, with a thumbnail of its first page."""
    data = corpus.pdf_text()
    result = checked(tmp_path, data, FileType.PDF)
    assert result.path.read_bytes() == data
    assert result.preview is not None
    with Image.open(io.BytesIO(result.preview)) as thumb:
        assert thumb.size[1] == policy.DEFAULT_LIMITS.preview_px


def _lie_about_size(data: bytes, name: str, claimed: int) -> bytes:
    """Rewrite the uncompressed size of `name` in its local header and central directory."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    struct.pack_into("<I", out, local + 22, claimed)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46 : central + 46 + name_len] == name.encode():
            struct.pack_into("<I", out, central + 24, claimed)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_docx_whose_directory_lies_about_sizes_is_refused(tmp_path: Path) -> None:
    """Declared sizes are only claims: an entry that expands past its claim fails its check."""
    bomb = corpus.docx_bomb(expanded=8 * corpus.MiB)
    liar = _lie_about_size(bomb, "word/media/image1.xml", 4_000)
    assert refusal_of(tmp_path, liar, FileType.DOCX) == policy.DAMAGED


def test_expansion_is_counted_for_real(tmp_path: Path) -> None:
    """With bounds lower than the real expansion, the running count refuses the archive even
    though each declared ratio passes."""
    limits = Limits(zip_max_expanded=4 * corpus.MiB, zip_max_ratio=10_000)
    bomb = corpus.docx_bomb(expanded=3 * corpus.MiB)
    ok = checked(tmp_path, bomb, FileType.DOCX, limits)
    assert ok.type is FileType.DOCX
    bigger = corpus.docx_bomb(expanded=5 * corpus.MiB)
    with pytest.raises(Refused) as caught:
        checked(tmp_path, bigger, FileType.DOCX, limits)
    assert caught.value.refusal == policy.ARCHIVE_TOO_LARGE


def test_cmyk_jpeg_becomes_rgb_and_alpha_png_keeps_alpha(tmp_path: Path) -> None:
    """Re-encoding keeps what a viewer needs: RGB for JPEG, transparency for PNG."""
    cmyk = Image.new("CMYK", (10, 10), (0, 255, 255, 0))
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG")
    result = checked(tmp_path, buf.getvalue(), FileType.JPEG)
    with Image.open(result.path) as img:
        assert img.mode == "RGB"
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 40))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    result = checked(tmp_path, buf.getvalue(), FileType.PNG)
    with Image.open(result.path) as img:
        assert img.getpixel((0, 0)) == (255, 0, 0, 40)


def test_png_bomb_is_refused_from_its_header_alone(tmp_path: Path) -> None:
    """The 400-megapixel PNG of about 50 KB is refused without decoding a single row."""
    data = corpus.png_bomb()
    assert len(data) < 64 * 1024
    assert refusal_of(tmp_path, data, FileType.PNG) == policy.IMAGE_TOO_LARGE


def test_image_named_as_another_format_is_damaged(tmp_path: Path) -> None:
    """A PNG's decoder never reads a JPEG: the sniffed type decides the decoder."""
    assert refusal_of(tmp_path, corpus.jpeg(), FileType.PNG) == policy.DAMAGED


def test_pdf_with_a_huge_image_gets_no_preview(tmp_path: Path) -> None:
    """Rendering decodes images whole: past 8 megapixels the PDF is kept without a preview."""
    image = (
        b"<< /Type /XObject /Subtype /Image /Width 4000 /Height 4000 /ColorSpace /DeviceGray"
        b" /BitsPerComponent 8 /Length 4 >>\nstream\nabcd\nendstream"
    )
    data = corpus.handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200]"
            b" /Resources << /XObject << /Im1 4 0 R >> >> >>",
            image,
        ]
    )
    result = checked(tmp_path, data, FileType.PDF)
    assert result.type is FileType.PDF and result.preview is None

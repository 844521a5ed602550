"""The content checks that need parsers, and the cleaning of images. Blocking: run in a thread.

`check_file` confirms what `policy.sniff` guessed, by parsing the file with the library made for
its type, and either raises `Refused` or returns what to store:

    JPEG, PNG  decoded (pixel limit read from the header first), turned upright from the EXIF
               orientation, and re-encoded from a fresh canvas: EXIF (GPS included), comments,
               XMP, ICC and text chunks do not survive. A thumbnail is made on the way.
    PDF        every object walked (pypdf) for scripts, launch actions and embedded files, and
               the raw bytes searched as well; page 1 rendered as a thumbnail (pypdfium2).
    DOC        the OLE2 directory listed (olefile): a WordDocument stream, no VBA project.
    DOCX       the ZIP's directory checked, then every entry expanded with a running bound (a
               declared size is only a claim) so that CRCs and real sizes are verified.

Nothing here logs content or names; a refusal carries only its reason key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import olefile
import pypdf
import pypdfium2
import structlog
from PIL import Image, JpegImagePlugin
from pypdf import PasswordType
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from messaging.attachments import policy
from messaging.attachments.policy import FileType, Limits, PdfFacts, Refusal

log = structlog.get_logger(__name__)

_CHUNK = 1024 * 1024
_CONTENT_TYPES_MAX = 1024 * 1024
# PDFium keeps process-wide state and is not thread-safe: one rendering at a time.
_PDFIUM = threading.Lock()


class Refused(Exception):
    """The file may not be kept; `refusal` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Checked:
    """A file that passed: what to store (`path`, the upload or its cleaned copy beside it)."""

    type: FileType
    path: Path
    size: int
    sha256: str
    # a small JPEG for clients to show, when one could be made
    preview: bytes | None


def check_file(path: Path, ftype: FileType, limits: Limits = policy.DEFAULT_LIMITS) -> Checked:
    """Confirm `ftype` from the content of `path`, clean it when it is an image."""
    out, preview = path, None
    if ftype.is_image:
        out, preview = clean_image(path, ftype, limits)
    elif ftype is FileType.PDF:
        largest_image = check_pdf(path, limits)
        if largest_image <= limits.preview_max_image_pixels:
            preview = pdf_preview(path, limits)
    elif ftype is FileType.DOC:
        check_doc(path)
    else:
        check_docx(path, limits)
    size = out.stat().st_size
    return Checked(ftype, out, size, sha256_of(out), preview)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise Refused(refusal)


# Images ----------------------------------------------------------------------------------------

_PIL_FORMAT = {FileType.JPEG: "JPEG", FileType.PNG: "PNG"}
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
_JPEG_MODES = frozenset({"L", "RGB"})
# EXIF orientation -> the transposition that makes the pixels upright
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def clean_image(path: Path, ftype: FileType, limits: Limits) -> tuple[Path, bytes | None]:
    """Re-encode the pixels alone into `<path>.clean`; returns it and a thumbnail."""
    out = path.with_name(path.name + ".clean")
    try:
        with Image.open(path, formats=[_PIL_FORMAT[ftype]]) as img:
            _refuse(policy.image_refusal(img.width, img.height, limits))
            img.load()
            orientation = img.getexif().get(0x0112)
            canvas, options = _fresh_canvas(img, ftype)
        if orientation in _UPRIGHT:  # after the source is closed: two copies at most, not three
            canvas = canvas.transpose(_UPRIGHT[orientation])
        canvas.save(out, _PIL_FORMAT[ftype], **options)
    except Refused:
        raise
    except Image.DecompressionBombError:
        raise Refused(policy.IMAGE_TOO_LARGE) from None
    except Exception as exc:  # whatever a decoder chokes on: truncated, corrupt, not that format
        log.info("image_unreadable", error_class=type(exc).__name__)
        out.unlink(missing_ok=True)
        raise Refused(policy.DAMAGED) from None
    return out, _thumbnail(canvas, limits.preview_px)


def _fresh_canvas(img: Image.Image, ftype: FileType) -> tuple[Image.Image, dict[str, Any]]:
    """The decoded pixels on a new image that carries no metadata at all, and the encoder
    options that keep the original's quality (quantization tables are only numbers)."""
    options: dict[str, Any] = {}
    if ftype is FileType.JPEG and img.mode in _JPEG_MODES:
        qtables = getattr(img, "quantization", None)
        if qtables:
            options["qtables"] = qtables
            sampling = JpegImagePlugin.get_sampling(img)
            if sampling != -1:
                options["subsampling"] = sampling
    if not options and ftype is FileType.JPEG:
        options["quality"] = 90
    if ftype is FileType.PNG:
        options["optimize"] = True
        transparency = img.info.get("transparency")
        if transparency is not None and img.mode in ("L", "P", "RGB"):
            options["transparency"] = transparency
    modes = _JPEG_MODES if ftype is FileType.JPEG else _PNG_MODES
    mode = img.mode if img.mode in modes else "RGB" if ftype is FileType.JPEG else "RGBA"
    if mode != img.mode:
        options.pop("transparency", None)
    canvas = Image.new(mode, img.size)
    if mode == "P":
        canvas.putpalette(img.getpalette() or [])
    canvas.paste(img, (0, 0))  # converted to the canvas's mode when they differ
    return canvas, options


def _thumbnail(img: Image.Image, px: int) -> bytes | None:
    try:
        scale = min(1.0, px / max(img.size))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        small = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        return _jpeg_bytes(small)
    except Exception as exc:  # a preview is a convenience: its absence is no refusal
        log.info("preview_failed", error_class=type(exc).__name__)
        return None


def _jpeg_bytes(img: Image.Image) -> bytes:
    if img.mode != "RGB":
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, (0, 0), rgba)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


# PDF -------------------------------------------------------------------------------------------


def check_pdf(path: Path, limits: Limits) -> int:
    """Refuse active content; returns the pixel count of the PDF's largest image (rendering a
    page decodes its images whole: the preview is skipped when that would cost too much)."""
    facts = raw_pdf_facts(path)
    largest_image = 0
    try:
        # An open file, not a path: given a path, pypdf reads the whole file into memory.
        with path.open("rb") as f:
            reader = pypdf.PdfReader(f, strict=False)
            if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                facts = policy.merge_pdf_facts(facts, PdfFacts(encrypted=True))
            else:
                walked, largest_image = _walk_pdf(reader, limits)
                facts = policy.merge_pdf_facts(facts, walked)
                if len(reader.pages) == 0:
                    raise Refused(policy.DAMAGED)
    except Refused:
        raise
    except Exception as exc:
        log.info("pdf_unreadable", error_class=type(exc).__name__)
        raise Refused(policy.DAMAGED) from None
    _refuse(policy.pdf_refusal(facts))
    return largest_image


def raw_pdf_facts(path: Path) -> PdfFacts:
    """The markers of PDF_RAW_MARKERS anywhere in the bytes (a chunk overlaps the previous one
    so that a marker across two chunks is still seen)."""
    found: set[str] = set()
    overlap = max(len(m) for m in policy.PDF_RAW_MARKERS) - 1
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            window = tail + chunk
            found.update(v for m, v in policy.PDF_RAW_MARKERS.items() if m in window)
            tail = window[-overlap:]
    return PdfFacts(
        javascript="javascript" in found, launch="launch" in found, embedded="embedded" in found
    )


def _walk_pdf(reader: pypdf.PdfReader, limits: Limits) -> tuple[PdfFacts, int]:
    """Every object of the cross-reference table (object streams included) and the trailer;
    with the largest image's pixel count."""
    refs = [(num, gen) for gen, table in reader.xref.items() for num in table]
    refs += [(num, 0) for num in reader.xref_objStm]
    if len(refs) > limits.pdf_max_objects:
        raise Refused(policy.DAMAGED)
    facts = _object_facts(reader.trailer)
    largest_image = 0
    for num, gen in refs:
        obj = reader.get_object(IndirectObject(num, gen, reader))
        facts = policy.merge_pdf_facts(facts, _object_facts(obj))
        if isinstance(obj, StreamObject) and not _is_object_stream(obj):
            largest_image = max(largest_image, _image_pixels(obj))
            # its data (a scan can be the whole file) is not needed again: let it go now
            reader.resolved_objects.pop((gen, num), None)
    return facts, largest_image


def _image_pixels(obj: StreamObject) -> int:
    if _name(dict.get(obj, "/Subtype")) != "/Image":
        return 0
    width, height = dict.get(obj, "/Width"), dict.get(obj, "/Height")
    if isinstance(width, int) and isinstance(height, int):
        return max(0, width) * max(0, height)
    return 2**62  # unknown: assume the worst


def _is_object_stream(obj: StreamObject) -> bool:
    return _name(dict.get(obj, "/Type")) == "/ObjStm"


def _object_facts(obj: object) -> PdfFacts:
    """Facts of one object and of the direct objects nested in it; references are not followed
    (each indirect object is visited on its own)."""
    facts = PdfFacts()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, DictionaryObject):
            values = dict.values(item)
            action = _name(dict.get(item, "/S"))
            kind = _name(dict.get(item, "/Type"))
            subtype = _name(dict.get(item, "/Subtype"))
            keys = [str(k) for k in dict.keys(item)]
            for k in (kind, subtype):
                facts = policy.merge_pdf_facts(facts, policy.pdf_dict_facts(keys, action, k))
            stack.extend(v for v in values if isinstance(v, DictionaryObject | ArrayObject))
        elif isinstance(item, ArrayObject):
            stack.extend(
                v for v in list.__iter__(item) if isinstance(v, DictionaryObject | ArrayObject)
            )
    return facts


def _name(value: object) -> str | None:
    if isinstance(value, IndirectObject):
        value = value.get_object()
    return str(value) if isinstance(value, str) else None


def pdf_preview(path: Path, limits: Limits) -> bytes | None:
    """Page 1, scaled to fit `preview_px`."""
    try:
        with _PDFIUM:
            pdf = pypdfium2.PdfDocument(path)
            try:
                page = pdf[0]
                width, height = page.get_size()
                scale = limits.preview_px / max(width, height, 1.0)
                image = page.render(scale=scale).to_pil()
                page.close()
            finally:
                pdf.close()
        return _jpeg_bytes(image)
    except Exception as exc:
        log.info("preview_failed", error_class=type(exc).__name__)
        return None


# Word ------------------------------------------------------------------------------------------


def check_doc(path: Path) -> None:
    try:
        with olefile.OleFileIO(str(path)) as ole:
            paths = ole.listdir(streams=True, storages=True)
    except Exception as exc:
        log.info("doc_unreadable", error_class=type(exc).__name__)
        raise Refused(policy.DAMAGED) from None
    _refuse(policy.ole_refusal(paths))


def check_docx(path: Path, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos or min(i.header_offset for i in infos) != 0:
                raise Refused(policy.DAMAGED)
            entries = [
                policy.ZipEntry(
                    name=i.filename,
                    compressed=i.compress_size,
                    expanded=i.file_size,
                    method=i.compress_type,
                    encrypted=bool(i.flag_bits & 0x1),
                )
                for i in infos
            ]
            types = policy.content_types(_content_types_xml(zf))
            _refuse(policy.zip_refusal(entries, types, limits))
            _expand_all(zf, infos, limits)
    except Refused:
        raise
    except Exception as exc:
        log.info("docx_unreadable", error_class=type(exc).__name__)
        raise Refused(policy.DAMAGED) from None


def _content_types_xml(zf: zipfile.ZipFile) -> str:
    with contextlib.suppress(KeyError), zf.open("[Content_Types].xml") as f:
        return f.read(_CONTENT_TYPES_MAX).decode("utf-8", errors="replace")
    return ""


def _expand_all(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Expand every entry with a running total: sizes are what the data gives, not what the
    directory claims, and zipfile checks each CRC at the end of its entry."""
    total = 0
    for info in infos:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
                if total > limits.zip_max_expanded:
                    raise Refused(policy.ARCHIVE_TOO_LARGE)

"""What an attachment may be (PROTOCOL.md sections 6 and 7), as pure functions.

No I/O here: the gateway hands in the first bytes of an upload, and `inspect` hands in the facts
it reads out of a file (an image's size, a PDF's actions, a Word file's streams or ZIP entries).
Each check returns None when the file may pass, else a `Refusal`: the protocol error code and an
i18n reason key (`messaging.i18n.attachments`), so that the person who sent the file reads why.

    size       1 byte .. 20 MiB; the body is cut off as soon as it passes the limit
    type       JPEG, PNG, PDF, DOC (OLE2 with a WordDocument stream) or DOCX, told by content
    images     at most `max_pixels` (a decompression bomb is refused before it is decoded)
    PDF        no JavaScript, no action that launches or opens something, no embedded files,
               not encrypted beyond an empty password
    DOC        no VBA project (macros), no embedded OLE package
    DOCX       a Word document; no vbaProject.bin, ActiveX or OLE objects; bounded expansion
    names      no path, no control or bidirectional characters, the type's own extension
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from messaging.errors import ErrorCode

MiB: Final = 1024 * 1024


class FileType(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    PDF = "application/pdf"
    DOC = "application/msword"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

    @property
    def is_image(self) -> bool:
        return self in (FileType.JPEG, FileType.PNG)


# The extensions a name may keep for each type; the first is added when the name has none of them.
EXTENSIONS: Final[dict[FileType, tuple[str, ...]]] = {
    FileType.JPEG: (".jpg", ".jpeg", ".jpe"),
    FileType.PNG: (".png",),
    FileType.PDF: (".pdf",),
    FileType.DOC: (".doc",),
    FileType.DOCX: (".docx",),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound an upload meets, named so that tests and operators can read them."""

    max_bytes: int = 20 * MiB
    per_message: int = 10
    # decoded image size; 50 MP covers the largest phone cameras
    max_pixels: int = 50_000_000
    # a multipart body may carry this much beyond the file: boundaries, part headers, fields
    multipart_overhead: int = 64 * 1024
    multipart_max_parts: int = 8
    multipart_max_headers: int = 16
    multipart_max_header_bytes: int = 4 * 1024
    # a DOCX is a ZIP: entries, their total expanded size, and how much one entry may expand
    zip_max_entries: int = 2_000
    zip_max_expanded: int = 256 * MiB
    zip_max_ratio: int = 100
    # the ratio is only looked at for entries that expand past this
    zip_ratio_floor: int = 1 * MiB
    pdf_max_objects: int = 500_000
    # a PDF's first page is rendered as a preview only when no image in it is larger than this
    # (a renderer decodes images whole: 8 MP is about 32 MiB)
    preview_max_image_pixels: int = 8_000_000
    name_max_chars: int = 150
    preview_px: int = 320


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a file is refused: the protocol code and an i18n reason key."""

    code: ErrorCode
    reason: str


TOO_LARGE = Refusal(ErrorCode.TOO_LARGE, "file_too_large")
EMPTY = Refusal(ErrorCode.INVALID, "file_empty")
NOT_ALLOWED = Refusal(ErrorCode.UNSUPPORTED_TYPE, "type_not_allowed")
DAMAGED = Refusal(ErrorCode.UNSUPPORTED_TYPE, "file_damaged")
IMAGE_TOO_LARGE = Refusal(ErrorCode.TOO_LARGE, "image_too_large")
PDF_JAVASCRIPT = Refusal(ErrorCode.UNSUPPORTED_TYPE, "pdf_javascript")
PDF_LAUNCH = Refusal(ErrorCode.UNSUPPORTED_TYPE, "pdf_launch")
PDF_EMBEDDED = Refusal(ErrorCode.UNSUPPORTED_TYPE, "pdf_embedded_file")
PDF_ENCRYPTED = Refusal(ErrorCode.UNSUPPORTED_TYPE, "pdf_encrypted")
WORD_MACROS = Refusal(ErrorCode.UNSUPPORTED_TYPE, "word_macros")
WORD_ACTIVE = Refusal(ErrorCode.UNSUPPORTED_TYPE, "word_active_content")
ARCHIVE_TOO_LARGE = Refusal(ErrorCode.TOO_LARGE, "archive_too_large")
INFECTED = Refusal(ErrorCode.UNSUPPORTED_TYPE, "file_infected")
MALFORMED = Refusal(ErrorCode.INVALID, "upload_malformed")
NO_FILE = Refusal(ErrorCode.INVALID, "upload_no_file")


# Size ------------------------------------------------------------------------------------------


def size_refusal(size: int, limits: Limits = DEFAULT_LIMITS) -> Refusal | None:
    """A received file's size: nothing, or more than the limit, is refused."""
    if size <= 0:
        return EMPTY
    if size > limits.max_bytes:
        return TOO_LARGE
    return None


def body_limit(multipart: bool, limits: Limits = DEFAULT_LIMITS) -> int:
    """The most bytes a request body may hold: the file, plus the multipart framing."""
    return limits.max_bytes + (limits.multipart_overhead if multipart else 0)


def declared_length_refusal(
    content_length: str | None, multipart: bool, limits: Limits = DEFAULT_LIMITS
) -> Refusal | None:
    """A Content-Length that already says too much is refused before a byte is read."""
    if content_length is None:
        return None
    try:
        declared = int(content_length)
    except ValueError:
        return MALFORMED
    if declared < 0:
        return MALFORMED
    if declared > body_limit(multipart, limits):
        return TOO_LARGE
    return None


# Type ------------------------------------------------------------------------------------------

# Enough bytes to tell every accepted type apart.
SNIFF_BYTES: Final = 8

_SIGNATURES: Final[tuple[tuple[bytes, FileType], ...]] = (
    (b"\xff\xd8\xff", FileType.JPEG),
    (b"\x89PNG\r\n\x1a\n", FileType.PNG),
    (b"%PDF-", FileType.PDF),
    # OLE2 compound file: a DOC once it is shown to hold a WordDocument stream
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileType.DOC),
    # a ZIP's first local header: a DOCX once its content types say so
    (b"PK\x03\x04", FileType.DOCX),
)


def sniff(head: bytes) -> FileType | None:
    """The type that the first bytes announce, or None; what follows must still confirm it.

    The signature must be at offset 0: a PDF header after junk, or a ZIP after an executable
    (a self-extracting archive), is refused rather than guessed at.
    """
    for signature, ftype in _SIGNATURES:
        if head.startswith(signature):
            if ftype is FileType.PDF and not head[5:6].isdigit():
                return None
            return ftype
    return None


def sniff_refusal(head: bytes, complete: bool) -> Refusal | None:
    """Refuse as soon as the first bytes show that the file cannot be of an accepted type.

    `complete`: the whole file is in `head`. Until SNIFF_BYTES have arrived, nothing is decided.
    """
    if not complete and len(head) < SNIFF_BYTES:
        return None
    if complete and not head:
        return EMPTY
    return None if sniff(head) is not None else NOT_ALLOWED


# Images ----------------------------------------------------------------------------------------


def image_refusal(width: int, height: int, limits: Limits = DEFAULT_LIMITS) -> Refusal | None:
    """Read from the header, before any decoding: too many pixels is a decompression bomb."""
    if width <= 0 or height <= 0:
        return DAMAGED
    if width * height > limits.max_pixels:
        return IMAGE_TOO_LARGE
    return None


# PDF -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PdfFacts:
    """What `inspect` found while walking every object of a PDF."""

    encrypted: bool = False
    javascript: bool = False
    launch: bool = False
    embedded: bool = False


# Action types that run code, start a program, open or fetch another file, or send data away.
# GoTo (a page of the same file) and URI (a link the reader confirms) are not among them.
PDF_SCRIPT_ACTIONS: Final = frozenset({"/JavaScript", "/Rendition", "/RichMediaExecute"})
PDF_LAUNCH_ACTIONS: Final = frozenset({"/Launch", "/GoToR", "/GoToE", "/ImportData", "/SubmitForm"})
# Dictionary keys that carry scripts (/JS in actions, /JavaScript in the name tree, XFA forms) or
# embedded files (/EmbeddedFiles name tree, /EF of a file specification).
PDF_SCRIPT_KEYS: Final = frozenset({"/JS", "/JavaScript", "/XFA"})
PDF_EMBEDDED_KEYS: Final = frozenset({"/EmbeddedFiles", "/EF", "/RichMediaContent"})
PDF_EMBEDDED_TYPES: Final = frozenset({"/EmbeddedFile", "/FileAttachment", "/RichMedia"})
# Byte strings that only appear in a PDF as these names; searched in the raw file as well, in
# case an object hides from the parser (a broken cross-reference table, an orphan object).
PDF_RAW_MARKERS: Final[dict[bytes, str]] = {
    b"/JavaScript": "javascript",
    b"/Launch": "launch",
    b"/EmbeddedFile": "embedded",
}


def pdf_dict_facts(keys: Iterable[str], action: str | None, kind: str | None) -> PdfFacts:
    """The facts one PDF dictionary contributes: its keys, its /S (action type), its /Type or
    /Subtype."""
    key_set = frozenset(keys)
    return PdfFacts(
        javascript=bool(key_set & PDF_SCRIPT_KEYS) or action in PDF_SCRIPT_ACTIONS,
        launch=action in PDF_LAUNCH_ACTIONS,
        embedded=bool(key_set & PDF_EMBEDDED_KEYS) or kind in PDF_EMBEDDED_TYPES,
    )


def merge_pdf_facts(a: PdfFacts, b: PdfFacts) -> PdfFacts:
    return PdfFacts(
        encrypted=a.encrypted or b.encrypted,
        javascript=a.javascript or b.javascript,
        launch=a.launch or b.launch,
        embedded=a.embedded or b.embedded,
    )


def pdf_refusal(facts: PdfFacts) -> Refusal | None:
    if facts.encrypted:
        return PDF_ENCRYPTED
    if facts.javascript:
        return PDF_JAVASCRIPT
    if facts.launch:
        return PDF_LAUNCH
    if facts.embedded:
        return PDF_EMBEDDED
    return None


# DOC (OLE2) ------------------------------------------------------------------------------------

# Storages and streams of a VBA project: Word 97-2003 keeps it under "Macros"
# (Macros/VBA/dir, Macros/VBA/_VBA_PROJECT), other writers under "_VBA_PROJECT_CUR".
_OLE_MACRO_NAMES: Final = frozenset({"macros", "_vba_project_cur", "vba", "_vba_project"})
# An embedded OLE package (an arbitrary file, often an executable, shown as an icon).
_OLE_PACKAGE_NAMES: Final = frozenset({"\x01ole10native"})


def ole_refusal(paths: Iterable[Sequence[str]]) -> Refusal | None:
    """An OLE2 file is a DOC when it holds a root stream "WordDocument"; refused with macros or
    an embedded package."""
    listed = [tuple(p) for p in paths]
    if ("WordDocument",) not in listed:
        return NOT_ALLOWED
    names = {part.lower() for path in listed for part in path}
    if names & _OLE_MACRO_NAMES:
        return WORD_MACROS
    if names & _OLE_PACKAGE_NAMES:
        return WORD_ACTIVE
    return None


# DOCX (ZIP) ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One entry of a ZIP's central directory, as declared (not yet trusted)."""

    name: str
    compressed: int
    expanded: int
    method: int = 8
    encrypted: bool = False


DOCX_MAIN_TYPE: Final = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
)
_MACRO_CONTENT_TYPES: Final = ("macroenabled", "vbaproject", "vbadata")
_ZIP_METHODS: Final = frozenset({0, 8})  # stored, deflated: all that Word writes
_CONTENT_TYPE_ATTR: Final = re.compile(r"""ContentType\s*=\s*["']([^"']{1,255})["']""")


def content_types(xml_text: str) -> frozenset[str]:
    """The content types named in a [Content_Types].xml, read without an XML parser (no entity
    expansion can happen)."""
    return frozenset(m.lower() for m in _CONTENT_TYPE_ATTR.findall(xml_text))


def zip_refusal(
    entries: Sequence[ZipEntry], types: frozenset[str], limits: Limits = DEFAULT_LIMITS
) -> Refusal | None:
    """A ZIP is a DOCX when its content types name a Word document's main part; refused with
    macros, ActiveX or OLE objects, and when its entries would expand past the bounds."""
    if len(entries) > limits.zip_max_entries:
        return ARCHIVE_TOO_LARGE
    names = [e.name for e in entries]
    if len(set(names)) != len(names) or any(_unsafe_zip_name(n) for n in names):
        return DAMAGED
    if any(e.encrypted or e.method not in _ZIP_METHODS or e.compressed < 0 for e in entries):
        return DAMAGED
    if _expands_too_much(entries, limits):
        return ARCHIVE_TOO_LARGE
    word = any("wordprocessingml" in t or "ms-word" in t for t in types)
    if "[Content_Types].xml" not in names or not word:
        return NOT_ALLOWED
    lowered = [n.lower() for n in names]
    if any(t in ct for ct in types for t in _MACRO_CONTENT_TYPES) or any(
        n.endswith(("vbaproject.bin", "vbadata.xml")) for n in lowered
    ):
        return WORD_MACROS
    if any(
        "activex/" in n or (n.startswith("word/embeddings/") and n.endswith(".bin"))
        for n in lowered
    ):
        return WORD_ACTIVE
    # a template (.dotx) or anything else that is not a document
    return None if DOCX_MAIN_TYPE in types else NOT_ALLOWED


def _unsafe_zip_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or "\x00" in name


def _expands_too_much(entries: Sequence[ZipEntry], limits: Limits) -> bool:
    total = 0
    for e in entries:
        if e.expanded < 0 or e.expanded > limits.zip_max_expanded:
            return True
        total += e.expanded
        ratio_applies = e.expanded > limits.zip_ratio_floor
        if ratio_applies and e.expanded > limits.zip_max_ratio * max(e.compressed, 1):
            return True
    return total > limits.zip_max_expanded


# Names -----------------------------------------------------------------------------------------

# Characters that no file name keeps: control and format characters (bidirectional overrides
# included, which can make "photo‮gnp.exe" display as "photoexe.png"), separators of lines and
# paragraphs, surrogates, private use and unassigned code points.
_DROPPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_RESERVED_CHARS: Final = frozenset('<>:"/\\|?*')
_WINDOWS_DEVICES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)
DEFAULT_STEM: Final = "piece-jointe"


def sanitize_name(raw: str | None, ftype: FileType, limits: Limits = DEFAULT_LIMITS) -> str:
    """A name safe to store and to offer in Content-Disposition, ending in the type's extension.

    The last path component only; dangerous characters dropped or replaced; no leading dot;
    the extension kept when it belongs to the type, else the type's own appended
    ("rapport.exe" that is really a PDF becomes "rapport.exe.pdf").
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if category in _DROPPED_CATEGORIES:
            continue
        kept.append("_" if ch in _RESERVED_CHARS else " " if category == "Zs" else ch)
    name = re.sub(r" {2,}", " ", "".join(kept)).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if dot and "." + ext.lower() in EXTENSIONS[ftype] and stem.strip(" ."):
        stem, suffix = stem.rstrip(" ."), "." + ext.lower()
    else:
        stem, suffix = name, EXTENSIONS[ftype][0]
    stem = stem.lstrip(" .") or DEFAULT_STEM
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = "_" + stem
    stem = stem[: max(1, limits.name_max_chars - len(suffix))].rstrip(" .") or DEFAULT_STEM
    return stem + suffix


def decode_header_name(value: str | None) -> str | None:
    """The file name of an `X-Filename` header: percent-encoded UTF-8 (RFC 3986), or raw UTF-8
    bytes that the server decoded as Latin-1."""
    if value is None:
        return None
    if re.search(r"%[0-9A-Fa-f]{2}", value):
        return unquote_to_bytes(value).decode("utf-8", errors="replace")
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 5987 form."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()\[\]+,=@-]", "_", ascii_name).strip() or "attachment"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


# Ranges ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Inclusive byte positions of a satisfiable range."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable:
    """A range header that no byte of the file can satisfy (HTTP 416)."""


UNSATISFIABLE: Final = Unsatisfiable()
_RANGE: Final = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """One range of `Range: bytes=a-b`, `a-` or `-n`; None means the whole file (no header,
    a header we do not honour such as several ranges, or one that is malformed)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = size - 1 if last == "" else min(int(last), size - 1)
    return ByteRange(start, end)


# Access ----------------------------------------------------------------------------------------


class Access(StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """What the store found about a viewer and an attachment."""

    is_owner: bool
    # a current member of a conversation where a message that is not withdrawn carries it
    is_member: bool
    # the principal of the school of a conversation that carries it
    is_principal: bool


def may_download(facts: AccessFacts) -> Access | None:
    """The uploader always; members of a conversation that carries it; the school's principal
    through the audit path (recorded). Anyone else: None (answered `not_found`)."""
    if facts.is_owner:
        return Access.OWNER
    if facts.is_member:
        return Access.MEMBER
    if facts.is_principal:
        return Access.AUDIT
    return None

"""The pure attachment rules, table by table, with no event loop and no file."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from messaging.attachments import policy
from messaging.attachments.policy import (
    Access,
    AccessFacts,
    ByteRange,
    FileType,
    Limits,
    PdfFacts,
    ZipEntry,
)
from messaging.attachments.scan import Verdict, parse_reply
from messaging.errors import ErrorCode

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\0\x10JFIF", FileType.JPEG),
        (b"\xff\xd8\xff\xdb", FileType.JPEG),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", FileType.PNG),
        (b"%PDF-1.7\n", FileType.PDF),
        (b"%PDF-2.0", FileType.PDF),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0", FileType.DOC),
        (b"PK\x03\x04\x14\0\x06\0", FileType.DOCX),
        (b"%PDF-x", None),
        (b" %PDF-1.4", None),
        (b"\xff\xd8", None),
        (b"\x89PNG\r\n\x1a", None),
        (b"PK\x05\x06", None),
        (b"MZ\x90\0", None),
        (b"\x7fELF", None),
        (b"GIF89a", None),
        (b"<svg xmlns=", None),
        (b"<!doctype html>", None),
        (b"{\\rtf1", None),
        (b"", None),
    ],
)
def test_type_is_told_by_the_first_bytes(head: bytes, expected: FileType | None) -> None:
    """Each accepted type by its signature at offset 0; everything else is no type."""
    assert policy.sniff(head) == expected


def test_sniffing_waits_for_enough_bytes_then_refuses_early() -> None:
    """Fewer than 8 bytes decide nothing until the body ends; then unknown bytes are refused."""
    assert policy.sniff_refusal(b"MZ", complete=False) is None
    assert policy.sniff_refusal(b"MZ\x90\0\x03\0\0\0", complete=False) == policy.NOT_ALLOWED
    assert policy.sniff_refusal(b"MZ", complete=True) == policy.NOT_ALLOWED
    assert policy.sniff_refusal(b"", complete=True) == policy.EMPTY
    assert policy.sniff_refusal(b"%PDF-1.", complete=False) is None
    assert policy.sniff_refusal(b"%PDF-1.7", complete=False) is None


@pytest.mark.parametrize(
    ("size", "refusal"),
    [
        (0, policy.EMPTY),
        (1, None),
        (20 * MiB - 1, None),
        (20 * MiB, None),
        (20 * MiB + 1, policy.TOO_LARGE),
        (10**12, policy.TOO_LARGE),
    ],
)
def test_size_is_one_byte_to_20_mib(size: int, refusal: policy.Refusal | None) -> None:
    """Empty and over 20 MiB are refused; exactly 20 MiB passes."""
    assert policy.size_refusal(size) == refusal


@pytest.mark.parametrize(
    ("header", "multipart", "refusal"),
    [
        (None, False, None),
        ("0", False, None),
        (str(20 * MiB), False, None),
        (str(20 * MiB + 1), False, policy.TOO_LARGE),
        (str(20 * MiB + 64 * 1024), True, None),
        (str(20 * MiB + 64 * 1024 + 1), True, policy.TOO_LARGE),
        ("12abc", False, policy.MALFORMED),
        ("-5", False, policy.MALFORMED),
    ],
)
def test_declared_length_is_judged_before_reading(
    header: str | None, multipart: bool, refusal: policy.Refusal | None
) -> None:
    """A Content-Length past the limit (plus the multipart allowance) is refused at once."""
    assert policy.declared_length_refusal(header, multipart) == refusal


@pytest.mark.parametrize(
    ("raw", "ftype", "expected"),
    [
        ("photo.jpg", FileType.JPEG, "photo.jpg"),
        ("Photo.JPEG", FileType.JPEG, "Photo.jpeg"),
        ("scan.png", FileType.JPEG, "scan.png.jpg"),
        ("rapport.exe", FileType.PDF, "rapport.exe.pdf"),
        ("../../etc/passwd", FileType.PDF, "passwd.pdf"),
        ("C:\\Users\\Sam\\Bulletin.docx", FileType.DOCX, "Bulletin.docx"),
        ("photo\u202egnp.exe", FileType.PNG, "photognp.exe.png"),
        ("a\x00b\x1fc\x7f.pdf", FileType.PDF, "abc.pdf"),
        ("ligne1\nligne2\u2028.doc", FileType.DOC, "ligne1ligne2.doc"),
        ('dé<>:"|?*.pdf', FileType.PDF, "dé_______.pdf"),
        ("  .cache .pdf", FileType.PDF, "cache.pdf"),
        ("...", FileType.PDF, "piece-jointe.pdf"),
        (".pdf", FileType.PDF, "pdf.pdf"),
        ("", FileType.PNG, "piece-jointe.png"),
        (None, FileType.DOCX, "piece-jointe.docx"),
        ("CON.pdf", FileType.PDF, "_CON.pdf"),
        ("lpt1.txt.pdf", FileType.PDF, "_lpt1.txt.pdf"),
        ("e\u0301cole.pdf", FileType.PDF, "\u00e9cole.pdf"),
        ("a\u00a0\u00a0b.pdf", FileType.PDF, "a b.pdf"),
        ("x" * 500 + ".pdf", FileType.PDF, "x" * 146 + ".pdf"),
    ],
)
def test_names_are_sanitised(raw: str | None, ftype: FileType, expected: str) -> None:
    """No path, no control, format or reserved characters, and the type's own extension."""
    assert policy.sanitize_name(raw, ftype) == expected


def test_sanitised_names_hold_no_dangerous_character() -> None:
    """Whatever comes in, the name has no separator or control character and is bounded."""
    pieces = ["a", "/", "\\", "\x00", "\u202e", "..", " ", ".", "é", "\r\n", "<", "\ud800"]
    for combo in itertools.product(pieces, repeat=3):
        name = policy.sanitize_name("".join(combo), FileType.PDF)
        assert name.endswith(".pdf") and not name.startswith(".")
        assert not set(name) & set('/\\\x00\r\n<>:"|?*\u202e\ud800')
        assert 0 < len(name) <= Limits().name_max_chars


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bulletin.pdf", "bulletin.pdf"),
        ("%C3%A9l%C3%A8ve.pdf", "élève.pdf"),
        ("élève.pdf".encode().decode("latin-1"), "élève.pdf"),
        ("caf\xe9.pdf", "caf\xe9.pdf"),
    ],
)
def test_x_filename_is_decoded(header: str | None, expected: str | None) -> None:
    """Percent-encoded UTF-8, or raw UTF-8 read as Latin-1, or plain Latin-1."""
    assert policy.decode_header_name(header) == expected


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name() -> None:
    """`filename` is plain ASCII without quotes; `filename*` carries the UTF-8 name."""
    value = policy.content_disposition('Élève "A"; 3e.pdf')
    assert value == (
        'attachment; filename="Eleve _A__ 3e.pdf"; '
        "filename*=UTF-8''%C3%89l%C3%A8ve%20%22A%22%3B%203e.pdf"
    )


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=90-200", 100, ByteRange(90, 99)),
        ("bytes=95-", 100, ByteRange(95, 99)),
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        ("bytes=100-", 100, policy.UNSATISFIABLE),
        ("bytes=150-160", 100, policy.UNSATISFIABLE),
        ("bytes=-0", 100, policy.UNSATISFIABLE),
        ("bytes=9-3", 100, None),
        ("bytes=-", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("items=0-1", 100, None),
        ("bytes=abc", 100, None),
        (" bytes=1-1 ", 100, ByteRange(1, 1)),
    ],
)
def test_one_byte_range_is_honoured(
    header: str | None, size: int, expected: ByteRange | policy.Unsatisfiable | None
) -> None:
    """One range of three forms; several ranges or nonsense mean the whole file."""
    assert policy.parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("width", "height", "refusal"),
    [
        (1, 1, None),
        (8000, 6000, None),
        (10_000, 5_000, None),
        (10_000, 5_001, policy.IMAGE_TOO_LARGE),
        (20_000, 20_000, policy.IMAGE_TOO_LARGE),
        (65_535, 1, None),
        (0, 10, policy.DAMAGED),
    ],
)
def test_pixel_count_is_bounded(width: int, height: int, refusal: policy.Refusal | None) -> None:
    """At most 50 megapixels, decided from the header before decoding."""
    assert policy.image_refusal(width, height) == refusal


@pytest.mark.parametrize(
    ("keys", "action", "kind", "facts"),
    [
        (["/Type", "/Pages"], None, "/Pages", PdfFacts()),
        (["/S", "/D"], "/GoTo", None, PdfFacts()),
        (["/S", "/URI"], "/URI", None, PdfFacts()),
        (["/S", "/JS"], "/JavaScript", None, PdfFacts(javascript=True)),
        (["/JavaScript"], None, None, PdfFacts(javascript=True)),
        (["/XFA"], None, None, PdfFacts(javascript=True)),
        (["/S"], "/Rendition", None, PdfFacts(javascript=True)),
        (["/S", "/F"], "/Launch", None, PdfFacts(launch=True)),
        (["/S"], "/GoToR", None, PdfFacts(launch=True)),
        (["/S"], "/SubmitForm", None, PdfFacts(launch=True)),
        (["/S"], "/ImportData", None, PdfFacts(launch=True)),
        (["/EmbeddedFiles"], None, None, PdfFacts(embedded=True)),
        (["/Type", "/EF"], None, "/Filespec", PdfFacts(embedded=True)),
        (["/Type"], None, "/EmbeddedFile", PdfFacts(embedded=True)),
        (["/Subtype"], None, "/FileAttachment", PdfFacts(embedded=True)),
    ],
)
def test_pdf_dictionaries_reveal_active_content(
    keys: list[str], action: str | None, kind: str | None, facts: PdfFacts
) -> None:
    """Scripts, launching or fetching actions and embedded files are told by keys and types;
    GoTo and URI actions are harmless."""
    assert policy.pdf_dict_facts(keys, action, kind) == facts


def test_pdf_refusal_names_the_first_problem() -> None:
    """Encryption first (nothing can be checked), then scripts, launches, embedded files."""
    assert policy.pdf_refusal(PdfFacts()) is None
    every = PdfFacts(encrypted=True, javascript=True, launch=True, embedded=True)
    assert policy.pdf_refusal(every) == policy.PDF_ENCRYPTED
    assert policy.pdf_refusal(PdfFacts(javascript=True, launch=True)) == policy.PDF_JAVASCRIPT
    assert policy.pdf_refusal(PdfFacts(launch=True, embedded=True)) == policy.PDF_LAUNCH
    assert policy.pdf_refusal(PdfFacts(embedded=True)) == policy.PDF_EMBEDDED
    merged = policy.merge_pdf_facts(PdfFacts(launch=True), PdfFacts(embedded=True))
    assert merged == PdfFacts(launch=True, embedded=True)


WORD = [("WordDocument",), ("1Table",), ("\x05SummaryInformation",)]


@pytest.mark.parametrize(
    ("paths", "refusal"),
    [
        (WORD, None),
        ([("Workbook",)], policy.NOT_ALLOWED),
        ([("1Table",), ("Data", "WordDocument")], policy.NOT_ALLOWED),
        ([*WORD, ("Macros", "VBA", "dir")], policy.WORD_MACROS),
        ([*WORD, ("macros",)], policy.WORD_MACROS),
        ([*WORD, ("_VBA_PROJECT_CUR", "VBA", "dir")], policy.WORD_MACROS),
        ([*WORD, ("ObjectPool", "_1", "\x01Ole10Native")], policy.WORD_ACTIVE),
        ([*WORD, ("ObjectPool", "_1", "\x01CompObj")], None),
    ],
)
def test_ole2_files_are_word_without_macros(
    paths: list[tuple[str, ...]], refusal: policy.Refusal | None
) -> None:
    """A DOC has a root WordDocument stream, no VBA project and no OLE package."""
    assert policy.ole_refusal(paths) == refusal


MAIN = frozenset({policy.DOCX_MAIN_TYPE, "application/xml"})
BASE = [
    ZipEntry("[Content_Types].xml", 300, 1_000),
    ZipEntry("_rels/.rels", 200, 600),
    ZipEntry("word/document.xml", 2_000, 20_000),
]


@pytest.mark.parametrize(
    ("entries", "types", "refusal"),
    [
        (BASE, MAIN, None),
        ([*BASE, ZipEntry("word/media/image1.png", 5 * MiB, 5 * MiB, method=0)], MAIN, None),
        ([*BASE, ZipEntry("word/embeddings/Feuille.xlsx", 9_000, 20_000)], MAIN, None),
        (BASE[1:], MAIN, policy.NOT_ALLOWED),
        (BASE, frozenset({"application/xml"}), policy.NOT_ALLOWED),
        (
            BASE,
            frozenset(
                {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"}
            ),
            policy.NOT_ALLOWED,
        ),
        (
            BASE,
            frozenset(
                {"application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"}
            ),
            policy.NOT_ALLOWED,
        ),
        (
            BASE,
            frozenset({"application/vnd.ms-word.document.macroenabled.main+xml"}),
            policy.WORD_MACROS,
        ),
        ([*BASE, ZipEntry("word/vbaProject.bin", 10, 40)], MAIN, policy.WORD_MACROS),
        ([*BASE, ZipEntry("word/vbaData.xml", 10, 40)], MAIN, policy.WORD_MACROS),
        ([*BASE, ZipEntry("word/activeX/activeX1.bin", 10, 40)], MAIN, policy.WORD_ACTIVE),
        ([*BASE, ZipEntry("word/embeddings/oleObject1.bin", 10, 40)], MAIN, policy.WORD_ACTIVE),
        ([*BASE, ZipEntry("word/document.xml", 10, 40)], MAIN, policy.DAMAGED),
        ([*BASE, ZipEntry("../evil.xml", 10, 40)], MAIN, policy.DAMAGED),
        ([*BASE, ZipEntry("/abs.xml", 10, 40)], MAIN, policy.DAMAGED),
        ([*BASE, ZipEntry("a.xml", 10, 40, encrypted=True)], MAIN, policy.DAMAGED),
        ([*BASE, ZipEntry("a.xml", 10, 40, method=14)], MAIN, policy.DAMAGED),
        ([*BASE, ZipEntry("big.xml", 100_000, 300 * MiB)], MAIN, policy.ARCHIVE_TOO_LARGE),
        ([*BASE, ZipEntry("bomb.xml", 60_000, 64 * MiB)], MAIN, policy.ARCHIVE_TOO_LARGE),
        ([*BASE, ZipEntry("tight.xml", 1_000_000, 90 * MiB)], MAIN, None),
        (
            [*BASE, *(ZipEntry(f"m/{i}.xml", 10 * MiB, 100 * MiB) for i in range(3))],
            MAIN,
            policy.ARCHIVE_TOO_LARGE,
        ),
        (
            [*BASE, *(ZipEntry(f"m/{i}.xml", 1, 1) for i in range(2_000))],
            MAIN,
            policy.ARCHIVE_TOO_LARGE,
        ),
        ([*BASE, ZipEntry("lies.xml", 10, -1)], MAIN, policy.ARCHIVE_TOO_LARGE),
    ],
)
def test_zip_files_are_word_documents_without_macros_or_bombs(
    entries: list[ZipEntry], types: frozenset[str], refusal: policy.Refusal | None
) -> None:
    """A DOCX names a Word main part; macros, ActiveX, OLE objects, unsafe or duplicate names
    and expansion past the bounds are refused."""
    assert policy.zip_refusal(entries, types) == refusal


def test_content_types_are_read_without_an_xml_parser() -> None:
    """Both quote styles; case folded; an entity bomb is just text."""
    xml = (
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]><Types>'
        '<Override PartName="/word/document.xml" ContentType="Application/A+XML"/>'
        "<Default Extension='rels' ContentType='application/b'/></Types>"
    )
    assert policy.content_types(xml) == frozenset({"application/a+xml", "application/b"})


@pytest.mark.parametrize(
    ("owner", "member", "principal", "access"),
    [
        (owner, member, principal, expected)
        for owner, member, principal in itertools.product([True, False], repeat=3)
        for expected in [
            Access.OWNER
            if owner
            else Access.MEMBER
            if member
            else Access.AUDIT
            if principal
            else None
        ]
    ],
)
def test_downloads_go_to_owner_members_and_the_principal(
    owner: bool, member: bool, principal: bool, access: Access | None
) -> None:
    """The uploader always; members of a carrying conversation; the principal, audited;
    nobody else."""
    assert policy.may_download(AccessFacts(owner, member, principal)) == access


def test_refusals_carry_the_protocol_codes() -> None:
    """Too large is 413, a type or content refusal 415, a malformed upload 400."""
    assert policy.TOO_LARGE.code is ErrorCode.TOO_LARGE
    assert policy.IMAGE_TOO_LARGE.code is ErrorCode.TOO_LARGE
    assert policy.ARCHIVE_TOO_LARGE.code is ErrorCode.TOO_LARGE
    for r in (policy.NOT_ALLOWED, policy.DAMAGED, policy.PDF_JAVASCRIPT, policy.WORD_MACROS):
        assert r.code is ErrorCode.UNSUPPORTED_TYPE
    assert policy.MALFORMED.code is ErrorCode.INVALID


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (b"stream: OK\0", Verdict.CLEAN),
        (b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0", Verdict.INFECTED),
        (b"INSTREAM size limit exceeded. ERROR\0", None),
        (b"stream: Can't allocate memory ERROR\0", None),
        (b"", None),
        (b"stream: OK trailing\0", None),
    ],
)
def test_clamd_replies_are_read_strictly(reply: bytes, verdict: Verdict | None) -> None:
    """Only `stream: OK` is clean and only `... FOUND` is infected; anything else is no
    verdict, and the upload is refused."""
    assert parse_reply(reply) == verdict


def test_policy_imports_no_io_or_parsing_library() -> None:
    """`policy` stays pure: importing it loads no event loop, database or file parser."""
    script = (
        "import json, sys; import messaging.attachments.policy; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    forbidden = {"asyncio", "anyio", "asyncpg", "starlette", "PIL", "pypdf", "olefile", "zipfile"}
    assert loaded.isdisjoint(forbidden), loaded & forbidden

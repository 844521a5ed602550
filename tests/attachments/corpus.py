"""Files for the attachment tests, made by code: good ones, and the bad input of the issue.

Every `Case` says what the service must do with the file: keep it (and of which type), or
refuse it with a status and a reason key. No binary file is committed: Pillow, pypdf,
reportlab, zipfile and a small OLE2 writer make them all, in well under a second.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ExifTags, Image, PngImagePlugin
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab.pdfgen import canvas

from tests.attachments import cfb

MiB = 1024 * 1024
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GPS_COMMENT = b"Photo de Lea Fictive devant l'ecole"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>lieu secret</rdf:RDF></x:xmpmeta>'

JPEG = "image/jpeg"
PNG = "image/png"
PDF = "application/pdf"
DOC = "application/msword"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# Images ----------------------------------------------------------------------------------------


def jpeg(size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    for x in range(0, size[0], 8):  # something that is not flat, to see a rotation
        img.putpixel((x, 0), (0, 0, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, **save)
    return buf.getvalue()


def gps_exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "FictiveCam"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (45.0, 30.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (73.0, 34.0, 1.0)
    return exif.tobytes()


def jpeg_with_gps() -> bytes:
    return jpeg(exif=gps_exif(), comment=GPS_COMMENT, xmp=XMP)


def jpeg_rotated() -> bytes:
    """64x48 pixels stored, EXIF orientation 6: shown 48 wide and 64 high."""
    return jpeg(exif=gps_exif(orientation=6))


def png(mode: str = "RGB", size: tuple[int, int] = (40, 30), **save: object) -> bytes:
    img = Image.new(mode, size)
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Lea Fictive, 3e A")
    info.add_itxt("Location", "45.5,-73.5 lieu secret")
    info.add_text("Author", "x" * 300, zip=True)
    info.add_text("html", "<html><script>alert(1)</script></html>")
    return png("RGBA", pnginfo=info, exif=gps_exif())


def png_palette_transparent() -> bytes:
    img = Image.new("P", (20, 20))
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 20_000) -> bytes:
    """A 1-bit PNG of side x side (400 megapixels), about 50 KB: every row is zeros."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_huge_header() -> bytes:
    """A small JPEG whose frame header claims 60,000 x 60,000 pixels."""
    data = bytearray(jpeg())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60_000, 60_000)
    return bytes(data)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# PDF -------------------------------------------------------------------------------------------


def pdf_text(text: str = "Formulaire de sortie scolaire") -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(595, 842))
    c.drawString(72, 770, text)
    c.rect(72, 600, 200, 100, fill=1)
    c.showPage()
    c.save()
    return buf.getvalue()


def _writer() -> PdfWriter:
    w = PdfWriter()
    w.add_blank_page(595, 842)
    return w


def _bytes(w: PdfWriter) -> bytes:
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def pdf_javascript() -> bytes:
    """Document-level JavaScript: the catalog's /Names /JavaScript name tree."""
    w = _writer()
    action = DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert('bonjour');"),
        }
    )
    tree = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("init"), w._add_object(action)])}
    )
    w._root_object[NameObject("/Names")] = DictionaryObject(
        {NameObject("/JavaScript"): w._add_object(tree)}
    )
    return _bytes(w)


def pdf_open_action_js() -> bytes:
    w = _writer()
    w._root_object[NameObject("/OpenAction")] = DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("this.exportDataObject();"),
        }
    )
    return _bytes(w)


def pdf_open_action_goto() -> bytes:
    """A harmless OpenAction: open at page 1, fit to the window."""
    w = _writer()
    page = w.pages[0].indirect_reference
    w._root_object[NameObject("/OpenAction")] = ArrayObject([page, NameObject("/Fit")])
    return _bytes(w)


def pdf_page_aa_js() -> bytes:
    w = _writer()
    w.pages[0][NameObject("/AA")] = DictionaryObject(
        {
            NameObject("/O"): DictionaryObject(
                {
                    NameObject("/S"): NameObject("/JavaScript"),
                    NameObject("/JS"): TextStringObject("app.launchURL('x');"),
                }
            )
        }
    )
    return _bytes(w)


def pdf_launch() -> bytes:
    w = _writer()
    w._root_object[NameObject("/OpenAction")] = DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("cmd.exe"),
            NameObject("/NewWindow"): NumberObject(1),
        }
    )
    return _bytes(w)


def pdf_embedded_file() -> bytes:
    w = _writer()
    w.add_attachment("notes.txt", b"piece cachee")
    return _bytes(w)


def pdf_encrypted() -> bytes:
    w = _writer()
    w.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    return _bytes(w)


def pdf_owner_password_only() -> bytes:
    """Printing restricted, but anyone may open it: the empty user password decrypts it."""
    w = _writer()
    w.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    return _bytes(w)


def pdf_link() -> bytes:
    w = _writer()
    w.add_uri(0, "https://www.example.org/", [72, 700, 200, 720])
    return _bytes(w)


def handmade_pdf(objects: list[bytes]) -> bytes:
    """A PDF from raw object bodies (1 0 obj is the catalog), with a correct xref table."""
    return _with_prefix(b"", objects)


_PAGES = [
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
]


def pdf_obfuscated_js() -> bytes:
    """`/S /JavaScript` written with name escapes: no raw /JavaScript in the bytes."""
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
            *_PAGES,
            b"<< /S /J#61va#53cript /J#53 (app.alert\\(1\\)) >>",
        ]
    )


def pdf_obfuscated_launch() -> bytes:
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /L#61unch /F (calc.exe) >> >>",
            *_PAGES,
        ]
    )


def _with_prefix(prefix: bytes, objects: list[bytes]) -> bytes:
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + prefix
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def pdf_of_size(size: int) -> bytes:
    """Exactly `size` bytes: a comment line before the first object fills it up (the number
    of digits of the xref's offset moves with it, hence the second pass)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", *_PAGES]
    filler = size - len(_with_prefix(b"", objects)) - 2
    for _ in range(3):
        data = _with_prefix(b"%" + b"a" * filler + b"\n", objects)
        if len(data) == size:
            return data
        filler += size - len(data)
    raise AssertionError("no filler fits")


def pdf_with_eicar() -> bytes:
    return handmade_pdf([b"<< /Type /Catalog /Pages 2 0 R >> % " + EICAR, *_PAGES])


# Word ------------------------------------------------------------------------------------------

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="{main}"/>'
    "{extra}</Types>"
)
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Autorisation de sortie</w:t></w:r></w:p></w:body></w:document>"
)


def docx(
    *,
    main: str = DOCX_MAIN,
    extra_types: str = "",
    extra: dict[str, bytes] | None = None,
    duplicate: str | None = None,
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES.format(main=main, extra=extra_types))
        zf.writestr("_rels/.rels", RELS)
        zf.writestr("word/document.xml", DOCUMENT)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        if duplicate is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                zf.writestr(duplicate, b"autre contenu")
    return buf.getvalue()


def docx_bomb(expanded: int = 64 * MiB) -> bytes:
    """A DOCX whose one extra entry expands 64 MiB of zeros from about 64 KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES.format(main=DOCX_MAIN, extra=""))
        zf.writestr("_rels/.rels", RELS)
        zf.writestr("word/document.xml", DOCUMENT)
        with zf.open("word/media/image1.xml", "w") as f:
            chunk = b"\0" * MiB
            for _ in range(expanded // MiB):
                f.write(chunk)
    return buf.getvalue()


def xlsx() -> bytes:
    return docx(main="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")


def plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lisez-moi.txt", "bonjour")
    return buf.getvalue()


def doc(extra: dict[str, object] | None = None) -> bytes:
    tree: dict[str, object] = {
        "WordDocument": b"\xec\xa5" + b"\0" * 5000,
        "1Table": b"\0" * 4096,
        "\x05SummaryInformation": b"\0" * 4096,
    }
    tree.update(extra or {})
    return cfb.build(tree)


def doc_with_macros() -> bytes:
    return doc({"Macros": {"VBA": {"dir": b"\0", "_VBA_PROJECT": b"\0", "ThisDocument": b"\0"}}})


def doc_vba_cur() -> bytes:
    return doc({"_VBA_PROJECT_CUR": {"VBA": {"dir": b"\0"}}})


def doc_ole_package() -> bytes:
    return doc({"ObjectPool": {"_1234": {"\x01Ole10Native": b"MZ\x90\0"}}})


def ole_not_word() -> bytes:
    return cfb.build({"Workbook": b"\0" * 5000})


# Not accepted at all ----------------------------------------------------------------------------

PE_EXECUTABLE = b"MZ\x90\x00\x03" + b"\0" * 55 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200
ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01" + b"\0" * 57 + b"\0" * 200
HTML = b"<!doctype html><html><body><script>document.location='//x'</script></body></html>"
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert(document.cookie)</script></svg>"
)


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, "GIF")
    return buf.getvalue()


# The corpus -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One file: its name as sent, how to make it, and what must happen."""

    label: str
    filename: str
    make: Callable[[], bytes]
    # a type (kept) or an HTTP status (refused) with the reason key
    type: str | None = None
    status: int = 201
    reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.status == 201


def kept(label: str, filename: str, make: Callable[[], bytes], ftype: str) -> Case:
    return Case(label, filename, make, type=ftype)


def refused(label: str, filename: str, make: Callable[[], bytes], status: int, reason: str) -> Case:
    return Case(label, filename, make, status=status, reason=reason)


CORPUS: list[Case] = [
    kept("jpeg", "photo.jpg", jpeg, JPEG),
    kept("jpeg_gps_exif_xmp_comment", "sortie.jpg", jpeg_with_gps, JPEG),
    kept("jpeg_exif_rotated", "portrait.jpeg", jpeg_rotated, JPEG),
    kept("jpeg_zip_polyglot", "photo.jpg", lambda: jpeg() + plain_zip(), JPEG),
    kept("png_rgb", "dessin.png", png, PNG),
    kept("png_text_chunks_exif", "dessin.png", png_with_text, PNG),
    kept("png_palette_transparency", "icone.png", png_palette_transparent, PNG),
    kept("png_16_bit_grey", "scan.png", lambda: png("I;16"), PNG),
    kept("jpeg_cmyk", "affiche.jpg", lambda: _cmyk_jpeg(), JPEG),
    kept("pdf_text", "formulaire.pdf", pdf_text, PDF),
    kept("pdf_open_action_goto", "guide.pdf", pdf_open_action_goto, PDF),
    kept("pdf_uri_link", "liens.pdf", pdf_link, PDF),
    kept("pdf_owner_password_only", "protege.pdf", pdf_owner_password_only, PDF),
    kept("docx", "autorisation.docx", docx, DOCX),
    kept("doc", "ancien.doc", doc, DOC),
    kept("png_named_exe", "image.exe", png, PNG),
    kept("pdf_exactly_20_mib", "gros.pdf", lambda: pdf_of_size(20 * MiB), PDF),
    refused("pe_named_pdf", "facture.pdf", lambda: PE_EXECUTABLE, 415, "type_not_allowed"),
    refused("elf_named_jpg", "photo.jpg", lambda: ELF_EXECUTABLE, 415, "type_not_allowed"),
    refused(
        "sfx_zip_named_docx", "lettre.docx", lambda: PE_EXECUTABLE + docx(), 415, "type_not_allowed"
    ),
    refused("html_named_png", "image.png", lambda: HTML, 415, "type_not_allowed"),
    refused("svg_named_png", "logo.png", lambda: SVG, 415, "type_not_allowed"),
    refused("gif_named_png", "anim.png", gif, 415, "type_not_allowed"),
    refused(
        "javascript_named_jpg", "photo.jpg", lambda: b"alert('x');" * 10, 415, "type_not_allowed"
    ),
    refused(
        "rtf_named_doc", "lettre.doc", lambda: b"{\\rtf1\\ansi bonjour}", 415, "type_not_allowed"
    ),
    refused("plain_zip_named_docx", "archive.docx", plain_zip, 415, "type_not_allowed"),
    refused("xlsx_named_docx", "notes.docx", xlsx, 415, "type_not_allowed"),
    refused("ole_workbook_named_doc", "notes.doc", ole_not_word, 415, "type_not_allowed"),
    refused("pdf_after_junk", "doc.pdf", lambda: b"junk\n" + pdf_text(), 415, "type_not_allowed"),
    refused("eicar_text", "eicar.com", lambda: EICAR, 415, "type_not_allowed"),
    refused(
        "truncated_jpeg", "photo.jpg", lambda: truncated(jpeg((400, 300))), 415, "file_damaged"
    ),
    refused(
        "truncated_png",
        "dessin.png",
        lambda: truncated(png("RGB", (400, 300))),
        415,
        "file_damaged",
    ),
    refused(
        "truncated_pdf", "formulaire.pdf", lambda: b"%PDF-1.7\n1 0 obj\n<<", 415, "file_damaged"
    ),
    refused("png_bomb_400_megapixels", "petit.png", png_bomb, 413, "image_too_large"),
    refused("jpeg_header_60000_square", "grand.jpg", jpeg_huge_header, 413, "image_too_large"),
    refused("pdf_javascript_name_tree", "js.pdf", pdf_javascript, 415, "pdf_javascript"),
    refused("pdf_open_action_javascript", "open.pdf", pdf_open_action_js, 415, "pdf_javascript"),
    refused("pdf_page_aa_javascript", "aa.pdf", pdf_page_aa_js, 415, "pdf_javascript"),
    refused("pdf_obfuscated_javascript", "obf.pdf", pdf_obfuscated_js, 415, "pdf_javascript"),
    refused("pdf_launch", "launch.pdf", pdf_launch, 415, "pdf_launch"),
    refused("pdf_obfuscated_launch", "launch2.pdf", pdf_obfuscated_launch, 415, "pdf_launch"),
    refused("pdf_embedded_file", "joint.pdf", pdf_embedded_file, 415, "pdf_embedded_file"),
    refused("pdf_encrypted", "secret.pdf", pdf_encrypted, 415, "pdf_encrypted"),
    refused("doc_macros", "macro.doc", doc_with_macros, 415, "word_macros"),
    refused("doc_vba_project_cur", "macro2.doc", doc_vba_cur, 415, "word_macros"),
    refused("doc_ole_package", "paquet.doc", doc_ole_package, 415, "word_active_content"),
    refused(
        "docx_vba_project",
        "macro.docx",
        lambda: docx(extra={"word/vbaProject.bin": b"\0" * 64}),
        415,
        "word_macros",
    ),
    refused(
        "docm_content_type",
        "macro.docx",
        lambda: docx(main="application/vnd.ms-word.document.macroEnabled.main+xml"),
        415,
        "word_macros",
    ),
    refused(
        "docx_activex",
        "ax.docx",
        lambda: docx(extra={"word/activeX/activeX1.bin": b"\0" * 64}),
        415,
        "word_active_content",
    ),
    refused(
        "docx_ole_object",
        "ole.docx",
        lambda: docx(extra={"word/embeddings/oleObject1.bin": doc()}),
        415,
        "word_active_content",
    ),
    refused(
        "docx_duplicate_entry",
        "double.docx",
        lambda: docx(duplicate="word/document.xml"),
        415,
        "file_damaged",
    ),
    refused("docx_zip_bomb", "bombe.docx", docx_bomb, 413, "archive_too_large"),
    refused("empty", "vide.pdf", lambda: b"", 400, "file_empty"),
    refused(
        "pdf_20_mib_plus_one", "trop.pdf", lambda: pdf_of_size(20 * MiB + 1), 413, "file_too_large"
    ),
]


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(buf, "JPEG")
    return buf.getvalue()


# Only with clamd: a PDF that passes every other check.
INFECTED = refused("pdf_with_eicar", "propre.pdf", pdf_with_eicar, 415, "file_infected")

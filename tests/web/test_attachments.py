"""Attachments in the browser: progress, thumbnails, and clear refusals."""

from __future__ import annotations

import io
import re

from PIL import Image
from playwright.sync_api import expect

from tests.rosters import SchoolIds
from tests.web.conftest import People
from tests.web.test_chat import start_direct


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_image_upload_shows_progress_and_a_thumbnail_and_an_exe_is_refused(
    people: People, web_school: SchoolIds
) -> None:
    """A photo uploads with a progress bar and arrives as a thumbnail on both sides; an .exe
    is refused before upload and a program renamed .pdf is refused by the server, each with a
    message naming the file."""
    parent = people.sign_in(web_school.parent)
    teacher = people.sign_in(web_school.teacher)
    start_direct(parent, "Marie Enseignante")
    picker = parent.page.locator(".composer input[type=file]")

    picker.set_input_files(
        [
            {"name": "virus.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00"},
            {"name": "rapport.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00" * 64},
        ]
    )
    refusals = parent.page.locator(".upload.refused")
    expect(refusals).to_have_count(2)
    expect(refusals.nth(0)).to_have_text(
        "« virus.exe » est refusé : seuls les fichiers JPEG, PNG, PDF, DOC et DOCX sont acceptés."
    )
    expect(refusals.nth(1)).to_contain_text("« rapport.pdf » est refusé")
    for _ in range(2):
        refusals.first.get_by_role("button").click()
    expect(refusals).to_have_count(0)

    picker.set_input_files([{"name": "dessin.png", "mimeType": "image/png", "buffer": png()}])
    bar = parent.page.get_by_role("progressbar", name="Envoi de dessin.png")
    expect(bar).to_have_attribute("value", "1")
    expect(parent.page.locator(".upload.done")).to_have_count(1)
    parent.page.locator(".composer textarea").fill("Le dessin de Léa")
    parent.page.locator(".composer button.send").click()

    for person in (parent, teacher):
        if person is teacher:
            teacher.conversation("Sam Fictif")
        thumb = person.page.locator(".msg img.thumb")
        expect(thumb).to_have_attribute("src", re.compile("^blob:"))
        expect(thumb).to_have_js_property("complete", True)
        assert thumb.evaluate("img => img.naturalWidth") > 0
    expect(
        teacher.page.get_by_role("button", name=re.compile("^Télécharger dessin.png"))
    ).to_be_visible()

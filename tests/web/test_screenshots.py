"""The main screens at desktop and phone sizes, in French and English, with the demo school.

Each screen must fit a phone's width without sideways scrolling. With
MESSAGING_UPDATE_SCREENSHOTS=1 (`make screenshots`) the pictures replace those under
docs/screenshots/, which the README and the user guides show; otherwise they go to a
temporary folder.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from messaging.gateway.auth import mint_token
from tests.servers import Gateway
from tests.web.conftest import DESKTOP, PHONE, REPO_ROOT, People, Person
from tests.web.test_chat import start_direct

DEMO = REPO_ROOT / "messaging" / "demo_roster.json"


def drawing() -> bytes:
    image = Image.new("RGB", (800, 600), (250, 246, 232))
    pen = ImageDraw.Draw(image)
    pen.ellipse((560, 60, 720, 220), fill=(255, 200, 40))
    pen.rectangle((120, 300, 420, 520), fill=(200, 70, 60))
    pen.polygon([(100, 300), (270, 160), (440, 300)], fill=(120, 60, 40))
    pen.rectangle((0, 520, 800, 600), fill=(90, 170, 80))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    if os.environ.get("MESSAGING_UPDATE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


class Camera:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    def shoot(self, page: Page, name: str, *, phone: bool = False) -> None:
        page.set_viewport_size(PHONE if phone else DESKTOP)
        page.evaluate(
            "document.querySelectorAll('.page').forEach((e) => { e.scrollTop = 0; });"
            "if (document.activeElement) document.activeElement.blur();"
        )
        page.wait_for_timeout(150)
        if phone:
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name}: {overflow}px wider than a phone"
        path = self.folder / f"{name}-{'phone' if phone else 'desktop'}.png"
        page.screenshot(path=str(path))
        self.taken.append(path)

    def both_languages(self, person: Person, name: str, *, phone: bool = False) -> None:
        page = person.page
        first = page.evaluate("document.documentElement.lang")
        self.shoot(page, f"{name}-{first}", phone=phone)
        other = "en" if first == "fr" else "fr"
        page.locator("button.lang").click()
        self.shoot(page, f"{name}-{other}", phone=phone)
        page.locator("button.lang").click()


def test_main_screens_fit_desktop_and_phone_in_both_languages(
    people: People, web_gateway: Gateway, secret: str, shots_dir: Path
) -> None:
    """Parent, teacher, office and principal screens render at 1280 and 390 pixels wide, in
    French and English, without sideways scrolling on a phone; the teacher's hours save."""
    response = httpx.post(
        f"{web_gateway.url}/api/admin/roster",
        json=json.loads(DEMO.read_text(encoding="utf-8")),
        headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    camera = Camera(shots_dir)

    office = people.sign_in("bur-1")
    office.page.get_by_role("button", name="Envois collectifs").click()
    office.page.get_by_label("Texte en français").fill(
        "Rappel : la photo scolaire aura lieu jeudi matin. Merci de prévoir une tenue soignée."
    )
    office.page.get_by_label("Texte en anglais (facultatif)").fill(
        "Reminder: school photos are on Thursday morning. Please dress your child neatly."
    )
    office.page.get_by_role("button", name="Envoyer", exact=True).click()
    expect(office.page.locator(".send")).to_have_count(1)

    parent = people.sign_in("par-2")
    teacher = people.sign_in("ens-1")
    start_direct(parent, "Julie Côté")
    parent.write(
        "Bonjour Madame Côté, Noah a oublié son cahier de lecture à l’école. "
        "Peut-il le reprendre demain?"
    )
    teacher.conversation("Geneviève Tremblay")
    picker = teacher.page.locator(".composer input[type=file]")
    picker.set_input_files(
        [{"name": "dessin-de-noah.png", "mimeType": "image/png", "buffer": drawing()}]
    )
    expect(teacher.page.locator(".upload.done")).to_have_count(1)
    teacher.write(
        "Bien sûr! Je le garde sur mon bureau. Voici aussi le dessin qu’il a fait ce matin."
    )
    expect(parent.page.locator(".msg.theirs img.thumb")).to_have_js_property("complete", True)
    parent.write("Merci beaucoup, bonne journée!")
    expect(parent.page.locator(".msg.mine .status").last).to_have_text("Vu")

    english = people.sign_in("par-1")
    start_direct(english, "Julie Côté")
    english.write("Hello, Léa will leave at 2 p.m. on Friday for a dentist appointment.")
    english.conversation("Bulk send from Nathalie Bouchard")

    camera.both_languages(parent, "parent-conversation")
    camera.both_languages(parent, "parent-conversation", phone=True)
    parent.page.get_by_role("button", name="Retour à la liste").click()
    camera.both_languages(parent, "parent-list", phone=True)
    camera.shoot(english.page, "parent-broadcast-en")
    english.page.get_by_role("button", name="New conversation").click()
    camera.shoot(english.page, "parent-new-conversation-en")
    english.page.keyboard.press("Escape")
    english.conversation("Julie Côté")
    camera.shoot(english.page, "parent-hours-note-en")

    camera.both_languages(teacher, "teacher-conversation")
    camera.both_languages(teacher, "teacher-conversation", phone=True)
    teacher.page.get_by_role("button", name="Heures de travail").click()
    camera.both_languages(teacher, "teacher-hours")
    teacher.page.get_by_role("button", name="Enregistrer").click()
    expect(teacher.page.locator(".hours-form .ok")).to_have_text("Heures enregistrées.")

    office.page.get_by_label("Groupes", exact=True).check()
    office.page.get_by_label("1re année A").check()
    camera.both_languages(office, "office-broadcasts")
    camera.both_languages(office, "office-broadcasts", phone=True)

    principal = people.sign_in("dir-1")
    principal.page.get_by_role("button", name="Supervision").click()
    principal.page.locator(".result", has_text="Julie Côté").filter(has_text="Geneviève").click()
    principal.page.locator(".audit-event").first.wait_for()
    camera.both_languages(principal, "principal-oversight")

    assert len(camera.taken) == 21
    assert all(p.stat().st_size > 10_000 for p in camera.taken)

"""The principal's oversight in the browser: find a conversation, read it whole, lock it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.rosters import SchoolIds
from tests.web.conftest import People
from tests.web.test_chat import start_direct


def test_principal_lock_shows_on_parents_composer_and_refuses(
    people: People, web_school: SchoolIds
) -> None:
    """The principal finds the conversation, sees a deleted message marked as such, locks it
    with a reason; the parent's page shows the lock and refuses to send, and after unlocking
    the parent can write again."""
    parent = people.sign_in(web_school.parent)
    start_direct(parent, "Marie Enseignante")
    parent.write("Premier message")
    parent.write("Second message, retiré ensuite")
    retracted = parent.page.locator(".msg.mine", has_text="Second message")
    retracted.get_by_role("button", name=re.compile("Supprimer")).click()
    retracted.get_by_role("button", name="Confirmer la suppression").click()
    expect(parent.page.locator(".msg.mine .body").last).to_have_text("Message supprimé")

    principal = people.sign_in(web_school.principal)
    page = principal.page
    page.get_by_role("button", name="Supervision").click()
    page.get_by_label("Mots ou nom").fill("Premier")
    page.get_by_role("button", name="Chercher").click()
    page.locator(".result", has_text="Sam Fictif").click()
    events = page.locator(".audit-event.message")
    expect(events).to_have_count(2)
    expect(events.nth(1)).to_contain_text("Second message, retiré ensuite")
    expect(events.nth(1).locator(".withdrawn-mark")).to_contain_text("Supprimé par Sam Fictif")
    page.get_by_label("Motif du verrouillage").fill("Propos à clarifier en personne")
    page.get_by_role("button", name="Verrouiller", exact=True).click()
    expect(page.locator(".lock-state")).to_have_text("Verrouillée")

    lock_note = parent.page.locator(".lock-note")
    expect(lock_note).to_contain_text("verrouillée par la direction")
    expect(lock_note).to_contain_text("Propos à clarifier en personne")
    composer = parent.page.locator(".composer textarea")
    expect(composer).to_be_disabled()
    expect(parent.page.locator(".composer button.send")).to_be_disabled()
    expect(parent.page.locator(".conv-item .icon-lock")).to_have_count(1)

    page.get_by_role("button", name="Déverrouiller").click()
    expect(page.locator(".lock-state")).to_have_text("Ouverte")
    expect(composer).to_be_enabled()
    parent.write("Après le déverrouillage")
    expect(parent.page.locator(".msg.mine").last.locator(".status")).to_have_text("Envoyé")

    page.get_by_role("button", name="Journal des consultations").click()
    expect(page.locator("table.reads tbody tr").first).to_contain_text("Dominique Directrice")

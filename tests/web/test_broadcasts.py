"""Bulk sends in the browser: the office's composer, parents reading in their language, a
private reply, and the list of sends with what was seen."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.rosters import SchoolIds
from tests.web.conftest import People

FR = "Sortie au musée vendredi : prévoir un lunch."
EN = "Museum trip on Friday: please pack a lunch."


def test_office_bulk_send_reaches_parents_in_their_language_and_a_private_reply_returns(
    people: People, web_school: SchoolIds
) -> None:
    """The office picks group 3e A (a live count of 2 parents), writes French and English; the
    French parent reads French, the English parent English, answers privately, and the office
    gets that reply in a direct conversation; the send then shows "Vu par 2 sur 2"."""
    office = people.sign_in(web_school.office)
    fr_parent = people.sign_in(web_school.parent)
    en_parent = people.sign_in(web_school.parent_en)
    page = office.page
    page.get_by_role("button", name="Envois collectifs").click()
    expect(page.locator(".count")).to_have_text("3 parents recevront ce message.")
    page.get_by_label("Groupes", exact=True).check()
    expect(page.locator(".count")).to_have_text("0 parent recevra ce message.")
    page.get_by_label("3e A").check()
    expect(page.locator(".count")).to_have_text("2 parents recevront ce message.")
    page.get_by_label("Texte en français").fill(FR)
    page.get_by_label("Texte en anglais (facultatif)").fill(EN)
    page.get_by_role("button", name="Envoyer", exact=True).click()
    expect(page.locator(".broadcast-form .ok")).to_have_text("Envoyé à 2 parents.")

    fr_parent.conversation("Envoi collectif de Claude Secrétaire")
    expect(fr_parent.page.locator(".msg.theirs .body")).to_have_text([FR])
    en_parent.conversation("Bulk send from Claude Secrétaire")
    expect(en_parent.page.locator(".msg.theirs .body")).to_have_text([EN])
    expect(en_parent.page.locator(".composer-note")).to_contain_text(
        "Other parents will not see it"
    )
    en_parent.write("We will pack a lunch, thanks!")
    expect(en_parent.page.locator(".thread-title")).to_have_text("Claude Secrétaire")
    expect(en_parent.page.locator(".msg.mine .body")).to_have_text(
        ["We will pack a lunch, thanks!"]
    )

    page.get_by_role("button", name="Conversations").click()
    office.conversation("Kim Fictional")
    expect(page.locator(".msg.theirs .body")).to_have_text(["We will pack a lunch, thanks!"])
    expect(page.locator(".msg.theirs .quote")).to_contain_text(EN)
    assert fr_parent.page.locator(".conv-item", has_text="Kim Fictional").count() == 0

    page.get_by_role("button", name="Envois collectifs").click()
    expect(page.locator(".send").first.locator(".send-state")).to_have_text("Vu par 2 sur 2")

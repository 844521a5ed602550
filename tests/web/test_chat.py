"""A parent and a teacher chat live in two browsers: messages, typing, receipts, deletion, and
a network cut that loses and doubles nothing."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.rosters import SchoolIds
from tests.servers import Gateway
from tests.web.conftest import People, Person
from tests.web.proxy import CuttableProxy


def start_direct(parent: Person, teacher_name: str) -> None:
    """The parent opens a conversation with the teacher from the dialog."""
    page = parent.page
    page.get_by_role("button", name=re.compile("Nouvelle conversation|New conversation")).click()
    dialog = page.locator("dialog")
    dialog.get_by_label(teacher_name).check()
    dialog.get_by_role("button", name=re.compile("Commencer|Start")).click()
    expect(dialog).to_have_count(0)
    page.locator(".thread").wait_for()


def test_parent_and_teacher_chat_live_with_typing_and_receipts(
    people: People, web_school: SchoolIds
) -> None:
    """The parent starts a conversation, the teacher sees it arrive, both see each other type
    and read ("Vu"), and a deleted message shows as deleted on the other side."""
    parent = people.sign_in(web_school.parent)
    teacher = people.sign_in(web_school.teacher)
    start_direct(parent, "Marie Enseignante")
    parent.write("Bonjour, Léa sera absente demain.")
    expect(parent.page.locator(".msg.mine .status")).to_have_text("Envoyé")

    item = teacher.page.locator(".conv-item", has_text="Sam Fictif")
    expect(item.locator(".badge")).to_have_text("1")
    teacher.conversation("Sam Fictif")
    expect(teacher.page.locator(".messages .msg.theirs .body")).to_have_text(
        ["Bonjour, Léa sera absente demain."]
    )
    expect(parent.page.locator(".msg.mine .status")).to_have_text("Vu")

    teacher.page.locator(".composer textarea").type("Merci")
    expect(parent.page.locator(".typing")).to_have_text("Marie Enseignante écrit…")
    teacher.page.locator(".composer textarea").press("Enter")
    expect(parent.page.locator(".msg.theirs .body")).to_have_text(["Merci"])

    parent.write("Message envoyé par erreur")
    mine = parent.page.locator(".msg.mine", has_text="Message envoyé par erreur")
    expect(teacher.page.locator(".msg.theirs .body").last).to_have_text("Message envoyé par erreur")
    mine.get_by_role("button", name=re.compile("Supprimer")).click()
    mine.get_by_role("button", name="Confirmer la suppression").click()
    expect(teacher.page.locator(".msg.theirs .body").last).to_have_text("Message supprimé")
    expect(parent.page.locator(".msg.mine .body").last).to_have_text("Message supprimé")
    assert parent.errors == [] and teacher.errors == []


def test_network_cut_catches_up_without_loss_or_duplicates(
    people: People, web_school: SchoolIds, web_gateway: Gateway
) -> None:
    """While a parent's network is cut, the teacher writes three messages and the parent one;
    once it is back the parent has each message exactly once, in order, and the teacher gets
    the parent's message once."""
    proxy = CuttableProxy(web_gateway.port)
    try:
        parent = people.sign_in(web_school.parent, base=proxy.url)
        teacher = people.sign_in(web_school.teacher)
        start_direct(parent, "Marie Enseignante")
        parent.write("Avant la coupure")
        teacher.conversation("Sam Fictif")
        expect(teacher.page.locator(".msg.theirs .body")).to_have_text(["Avant la coupure"])

        proxy.cut()
        expect(parent.page.locator(".banner")).to_have_attribute("data-status", "reconnecting")
        expect(parent.page.locator(".banner")).to_contain_text("Connexion perdue")
        for n in (1, 2, 3):
            teacher.write(f"Pendant la coupure {n}")
            expect(teacher.page.locator(".msg.mine .body").last).to_have_text(
                f"Pendant la coupure {n}"
            )
        parent.write("Écrit hors ligne")
        expect(parent.page.locator(".msg.pending .status")).to_have_text("En attente d’envoi…")

        proxy.restore()
        expect(parent.page.locator(".banner")).to_contain_text("3 messages manqués", timeout=20_000)
        expected = [
            "Avant la coupure",
            "Pendant la coupure 1",
            "Pendant la coupure 2",
            "Pendant la coupure 3",
            "Écrit hors ligne",
        ]
        expect(parent.page.locator(".messages .msg:not(.pending) .body")).to_have_text(expected)
        expect(parent.page.locator(".msg.pending")).to_have_count(0)
        expect(teacher.page.locator(".messages .msg .body")).to_have_text(expected)
        seqs = parent.page.locator(".messages .msg").evaluate_all(
            "els => els.map(e => e.dataset.seq)"
        )
        assert len(seqs) == len(set(seqs)) == 5
    finally:
        proxy.close()

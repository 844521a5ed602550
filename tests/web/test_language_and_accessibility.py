"""Every visible string follows the French/English switch, and axe-core (from npm) finds no
serious or critical accessibility violation on the main screens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.rosters import SchoolIds
from tests.web.conftest import PHONE, REPO_ROOT, People
from tests.web.test_chat import start_direct

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"

# The page's own texts, as rendered: static strings, and plural forms for small numbers.
TEXTS_JS = """async () => {
  const app = document.querySelector('script[type=module]').src;
  const src = app.replace(/js\\/app\\.js$/, 'js/strings.js');
  const m = await import(src);
  const render = (v) => typeof v === 'function'
    ? [0, 1, 2, 3].map((n) => { try { return v({ n, m: 4 }); } catch { return null; } })
    : [v];
  const out = {};
  for (const lang of ['FR', 'EN']) {
    out[lang] = Object.values(m[lang]).flatMap(render)
      .filter((s) => typeof s === 'string' && !s.includes('{'));
  }
  return out;
}"""

# What a person sees or hears: text of visible elements, and labels, placeholders, titles.
SHOWN_JS = """() => {
  const seen = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || !el.checkVisibility()) continue;
    seen.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll('[aria-label], [placeholder], [title]')) {
    for (const a of ['aria-label', 'placeholder', 'title']) {
      if (el.hasAttribute(a)) seen.push(el.getAttribute(a).trim());
    }
  }
  for (const el of document.querySelectorAll('label')) seen.push(el.textContent.trim());
  return seen;
}"""


def shown(page: Page) -> set[str]:
    return set(page.evaluate(SHOWN_JS))


def only_in(texts: dict[str, list[str]], lang: str) -> set[str]:
    other = "EN" if lang == "FR" else "FR"
    return set(texts[lang]) - set(texts[other])


def test_language_switch_changes_every_visible_string(
    people: People, web_school: SchoolIds
) -> None:
    """A French parent's conversation, composer and dialog show only French texts; after the
    switch to English none of them is left, the dates are English, and the page says lang=en."""
    parent = people.sign_in(web_school.parent)
    page = parent.page
    start_direct(parent, "Marie Enseignante")
    parent.write("Bonjour")
    expect(page.locator(".msg.mine .status")).to_have_text("Envoyé")
    texts = page.evaluate(TEXTS_JS)
    day_fr = page.locator(".day").first.inner_text()

    before = shown(page)
    assert before & only_in(texts, "FR"), "no French text found to begin with"
    assert not before & only_in(texts, "EN")
    assert page.evaluate("document.documentElement.lang") == "fr"

    page.get_by_role("button", name="Switch to English").click()
    after = shown(page)
    assert not after & only_in(texts, "FR"), after & only_in(texts, "FR")
    assert len(after & only_in(texts, "EN")) >= len(before & only_in(texts, "FR")) - 2
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator(".day").first.inner_text() != day_fr
    expect(page.locator(".msg.mine .status")).to_have_text("Sent")
    expect(page.locator(".composer textarea")).to_have_value("")

    page.get_by_role("button", name="New conversation").click()
    dialog_texts = shown(page)
    assert not dialog_texts & only_in(texts, "FR")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Passer en français").click()
    assert not shown(page) & only_in(texts, "EN")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ['violations'] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` runs `npm ci` to install axe-core")
    return Path(AXE).read_text(encoding="utf-8")


def test_main_screens_have_no_serious_accessibility_violations(
    people: People, web_school: SchoolIds, axe_source: str
) -> None:
    """axe-core, injected by the test, checks the conversation screen (desktop and phone), the
    new-conversation dialog, the bulk-send composer, the oversight screen and working hours."""
    found: dict[str, list[dict[str, Any]]] = {}
    parent = people.sign_in(web_school.parent, init_script=axe_source)
    start_direct(parent, "Marie Enseignante")
    parent.write("Bonjour, une question sur les devoirs.")
    expect(parent.page.locator(".msg.mine .status")).to_have_text("Envoyé")
    found["conversation"] = axe_violations(parent.page)
    parent.page.get_by_role("button", name="Nouvelle conversation").click()
    found["new conversation dialog"] = axe_violations(parent.page)
    parent.page.keyboard.press("Escape")
    parent.page.set_viewport_size(PHONE)
    found["conversation, phone"] = axe_violations(parent.page)
    parent.page.get_by_role("button", name="Retour à la liste").click()
    found["list, phone"] = axe_violations(parent.page)

    office = people.sign_in(web_school.office, init_script=axe_source)
    office.page.get_by_role("button", name="Envois collectifs").click()
    office.page.locator(".sends h2").wait_for()
    found["bulk sends"] = axe_violations(office.page)

    principal = people.sign_in(web_school.principal, init_script=axe_source)
    principal.page.get_by_role("button", name="Supervision").click()
    principal.page.locator(".result").first.click()
    principal.page.locator(".audit-event").first.wait_for()
    found["oversight"] = axe_violations(principal.page)
    principal.page.get_by_role("button", name="Heures de travail").click()
    found["working hours"] = axe_violations(principal.page)

    bad = {screen: v for screen, v in found.items() if v}
    assert not bad, bad


def test_keyboard_alone_opens_a_conversation_and_sends(
    people: People, web_school: SchoolIds
) -> None:
    """With the keyboard only: Tab to the new-conversation button, pick a person with Space,
    start with Enter, type and send with Enter."""
    parent = people.sign_in(web_school.parent)
    page = parent.page
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Nouvelle conversation":
            break
    page.keyboard.press("Enter")
    expect(page.locator("dialog")).to_be_visible()
    page.keyboard.type("Marie")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page.locator("dialog")).to_have_count(0)
    page.keyboard.type("Écrit au clavier")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.mine .body")).to_have_text(["Écrit au clavier"])
    assert re.match(r"Marie Enseignante", page.locator(".thread-title").inner_text())

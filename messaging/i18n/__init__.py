"""Texts a parent or teacher may read, in French and English.

Each catalog module maps a reason key to its (French, English) text; `text()` picks the user's
language and fills `{placeholders}`. Unknown locales fall back to French, the school's language.
"""

from __future__ import annotations

from typing import Any

from messaging.i18n import attachments, audit, broadcasts, core, notifications, protocol, rules

_CATALOG: dict[str, tuple[str, str]] = {
    **core.TEXTS,
    **protocol.TEXTS,
    **rules.TEXTS,
    **audit.TEXTS,
    **attachments.TEXTS,
    **broadcasts.TEXTS,
    **notifications.TEXTS,
}

LOCALES = ("fr", "en")


def text(key: str, locale: str, **params: Any) -> str:
    """The text for `key` in `locale` ('fr' or 'en'), with `params` filled in."""
    fr, en = _CATALOG.get(key, _CATALOG["internal"])
    template = en if locale == "en" else fr
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


def known(key: str) -> bool:
    return key in _CATALOG

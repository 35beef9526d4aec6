"""MkDocs hook: keep docs/settings.md honest about django_stomp_push.conf.Config.

Every field of ``Config`` is a ``STOMP_PUSH`` key in upper case. The settings page has one table row per key,
``| `KEY` | `default` | ...``. This hook reads those rows and logs a warning (which ``mkdocs build --strict``
turns into a failed build) for a key missing from the page, a documented key that is not a setting, or a default
that differs from the code's.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import re
from typing import Any

log = logging.getLogger("mkdocs.hooks.settings_reference")

PAGE = "settings.md"
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`([^`]*)`\s*\|", re.MULTILINE)


def _defaults() -> dict[str, Any]:
    from django_stomp_push.conf import Config

    defaults = {}
    for field in dataclasses.fields(Config):
        if field.default is not dataclasses.MISSING:
            value = field.default
        else:
            value = field.default_factory()  # type: ignore[misc]
        defaults[field.name.upper()] = value
    return defaults


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    try:
        defaults = _defaults()
    except Exception as exc:  # the package must be importable where the docs are built (make docs)
        log.warning("cannot import django_stomp_push.conf to check %s: %s", PAGE, exc)
        return markdown
    documented = dict(ROW.findall(markdown))
    for key in sorted(defaults.keys() - documented.keys()):
        log.warning("%s: STOMP_PUSH[%r] is a setting (conf.Config) but has no row", PAGE, key)
    for key in sorted(documented.keys() - defaults.keys()):
        log.warning("%s: %r has a row but is not a field of conf.Config", PAGE, key)
    for key in sorted(defaults.keys() & documented.keys()):
        try:
            value = ast.literal_eval(documented[key])
        except (ValueError, SyntaxError):
            log.warning("%s: the default of %s, %r, is not a Python literal", PAGE, key, documented[key])
            continue
        expected = defaults[key]
        if value != expected or type(value) is not type(expected):
            log.warning("%s: %s defaults to %r in conf.py, the page says %r", PAGE, key, expected, value)
    return markdown

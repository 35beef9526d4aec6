"""Griffe extension for the API reference (docs/api.md): the package's docstrings, written for Sphinx-like tools,
read as Markdown.

- A cross-reference role (``:func:`~.push.push```, ``:class:`Limits```, ``:data:`X```, ...) becomes a code span
  of the name's last part (``push()`` for functions and methods).
- A paragraph that ends in ``::`` (a reST literal block follows) ends in ``:``; the indented block after it is
  already a Markdown code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(func|meth|class|mod|data|attr|exc|obj|const):`~?\.*([^`]+)`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)


def markdown(text: str) -> str:
    def code(match: re.Match[str]) -> str:
        role, target = match.groups()
        name = target.rsplit(".", 1)[-1] if "<" not in target else target.split("<", 1)[0].strip()
        return f"`{name}()`" if role in ("func", "meth") else f"`{name}`"

    return LITERAL_BLOCK.sub(":", ROLE.sub(code, text))


class RestRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

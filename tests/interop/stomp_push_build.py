"""The plain-script build of the stomp-push helper, made from its one source, the ES module.

``stomp-push.mjs`` is the source. ``stomp-push.js`` is the same code inside a function that hands the module's
exports to one global, ``StompPush``, for pages that load it with a plain ``<script>``. Both files are shipped;
``test_stomp_push_files.py`` fails when the shipped script is not what :func:`plain_script` makes of the module.

After editing the module: ``.venv/bin/python -m tests.interop.stomp_push_build`` rewrites the script.
"""

from __future__ import annotations

import re

from tests.servers import REPO

STATIC = REPO / "django_stomp_push" / "static" / "django_stomp_push"
MODULE = STATIC / "stomp-push.mjs"
PLAIN_SCRIPT = STATIC / "stomp-push.js"
GLOBAL_NAME = "StompPush"

_HEADER = re.compile(r"\A(/\*.*?\*/\n)", re.DOTALL)
_EXPORTS = re.compile(r"^export \{([^}]*)\};\n\Z", re.MULTILINE)
_NOTICE = "// Generated from stomp-push.mjs by tests/interop/stomp_push_build.py: edit the module, not this file.\n"


def exported_names(module_source: str) -> list[str]:
    """The names in the module's one ``export { ... };`` statement, its last line."""
    match = _EXPORTS.search(module_source)
    if match is None:
        raise ValueError("stomp-push.mjs must end with one `export { ... };` line")
    return [name.strip() for name in match.group(1).split(",") if name.strip()]


def plain_script(module_source: str) -> str:
    """The module's code, unchanged, in a function that sets ``globalThis.StompPush`` to its exports."""
    header = _HEADER.match(module_source)
    if header is None:
        raise ValueError("stomp-push.mjs must start with its /*! ... */ comment")
    exports = _EXPORTS.search(module_source)
    assert exports is not None  # exported_names() raises first
    body = module_source[header.end() : exports.start()]
    names = ", ".join(exported_names(module_source))
    return (
        header.group(1)
        + _NOTICE
        + "(function (global) {\n"
        + '"use strict";\n'
        + body
        + f"global.{GLOBAL_NAME} = Object.freeze({{ {names} }});\n"
        + "})(globalThis);\n"
    )


def main() -> None:
    PLAIN_SCRIPT.write_text(plain_script(MODULE.read_text()))
    print(f"wrote {PLAIN_SCRIPT.relative_to(REPO)}")


if __name__ == "__main__":
    main()

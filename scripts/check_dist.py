"""Check what `python -m build` put in dist/: the wheel holds the package and nothing else, the sdist can rebuild it.

    python scripts/check_dist.py dist

The wheel must hold every file of the package's source tree (modules, py.typed, the static STOMP clients, and
migrations and templates should the package ever have them) and no other top-level package (tests, testproject,
bench); its metadata must name the version of ``django_stomp_push.__version__``. The sdist must hold the same
package files plus what a build from it needs (pyproject.toml, README.md, LICENSE). Exit status 1 lists every
problem found.
"""

from __future__ import annotations

import ast
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_stomp_push"

#: Named on their own so that a failure says plainly what a user would miss.
REQUIRED = (
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/static/{PACKAGE}/stomp-push.mjs",
    f"{PACKAGE}/static/{PACKAGE}/stomp-push.js",
)
SDIST_EXTRAS = ("pyproject.toml", "README.md", "LICENSE")


def package_files() -> set[str]:
    """Every file under the package's directory, as wheel paths, leaving out bytecode caches."""
    found = set()
    for path in (ROOT / PACKAGE).rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            found.add(path.relative_to(ROOT).as_posix())
    return found


def source_version() -> str:
    tree = ast.parse((ROOT / PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise SystemExit(f"no __version__ in {PACKAGE}/__init__.py")


def only(paths: list[Path], kind: str) -> Path:
    if len(paths) != 1:
        raise SystemExit(f"expected one {kind} in dist/, found {len(paths)}: {[p.name for p in paths]}")
    return paths[0]


def check_wheel(wheel: Path, expected: set[str], version: str) -> list[str]:
    problems = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        metadata = Parser().parsestr(archive.read(metadata_name).decode()) if metadata_name else None
    for name in REQUIRED:
        if name not in names:
            problems.append(f"wheel: {name} is missing")
    problems += [f"wheel: {name} is missing" for name in sorted(expected - names) if name not in REQUIRED]
    for name in sorted(names):
        top = name.split("/", 1)[0]
        if top != PACKAGE and not top.endswith(".dist-info"):
            problems.append(f"wheel: {name} is not part of the package")
    if metadata is None:
        problems.append("wheel: no METADATA")
    elif metadata["Version"] != version:
        problems.append(f"wheel: version {metadata['Version']}, {PACKAGE}.__version__ is {version}")
    return problems


def check_sdist(sdist: Path, expected: set[str]) -> list[str]:
    with tarfile.open(sdist) as archive:
        # every member sits under one "<name>-<version>/" directory
        names = {member.name.split("/", 1)[1] for member in archive.getmembers() if "/" in member.name}
    missing = sorted((expected | set(SDIST_EXTRAS)) - names)
    return [f"sdist: {name} is missing" for name in missing]


def main(dist: Path) -> int:
    wheel = only(sorted(dist.glob("*.whl")), "wheel")
    sdist = only(sorted(dist.glob("*.tar.gz")), "sdist")
    expected = package_files()
    problems = check_wheel(wheel, expected, source_version()) + check_sdist(sdist, expected)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{wheel.name}: {len(expected)} package files, metadata and static clients present; {sdist.name}: complete")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/check_dist.py DIST_DIR")
    sys.exit(main(Path(sys.argv[1])))

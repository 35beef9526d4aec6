"""The versions CI tests and the versions pyproject.toml declares are the same ones (CONTRIBUTING.md, "Supported
versions").

The oldest leg of scripts/matrix.sh runs the lowest Python that ``requires-python`` admits with exactly the lower
bounds of the dependencies; every leg's pins satisfy the dependencies; every leg's Python and Django are in the
classifiers. A raised minimum, a new leg or a new release pinned in one place and not the other fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LEGS = ("oldest", "newest")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+; the main leg runs these checks")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def constraints(leg: str) -> tuple[str, dict[str, Version]]:
    """The Python of ``leg`` and its pins (name -> version), from scripts/constraints-LEG.txt."""
    text = (ROOT / "scripts" / f"constraints-{leg}.txt").read_text()
    python = re.search(r"^# python: *([0-9.]+)", text, re.MULTILINE)
    assert python, f"scripts/constraints-{leg}.txt has no '# python: 3.X' line"
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: a leg pins exact versions"
            pins[requirement.name.lower()] = Version(spec.version)
    return python.group(1), pins


def dependencies() -> list[Requirement]:
    """What a user installs with ``django-stomp-push[redis]``."""
    project = pyproject()["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["redis"]]


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"{requirement}: declare one lower bound (>=)"
    return bounds[0]


def test_the_oldest_leg_pins_exactly_the_lower_bound_of_each_dependency() -> None:
    _, pins = constraints("oldest")
    declared = {r.name.lower(): lower_bound(r) for r in dependencies()}
    assert pins == declared


def test_the_oldest_leg_runs_the_lowest_python_the_package_admits() -> None:
    python, _ = constraints("oldest")
    assert pyproject()["project"]["requires-python"] == f">={python}"


@pytest.mark.parametrize("leg", LEGS)
def test_each_leg_pins_versions_the_dependencies_admit(leg: str) -> None:
    _, pins = constraints(leg)
    for requirement in dependencies():
        name = requirement.name.lower()
        assert name in pins, f"scripts/constraints-{leg}.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(pins[name]), f"{leg}: {name} {pins[name]} is outside {requirement}"


@pytest.mark.parametrize("leg", LEGS)
def test_each_legs_python_and_django_are_in_the_classifiers(leg: str) -> None:
    python, pins = constraints(leg)
    classifiers = pyproject()["project"]["classifiers"]
    django = pins["django"]
    assert f"Programming Language :: Python :: {python}" in classifiers
    assert f"Framework :: Django :: {django.major}.{django.minor}" in classifiers

"""Every runtime dependency is pinned, transitive ones included: requirements.txt (written by
bin/lock from requirements.in) holds the whole tree, and it is what bin/bootstrap and the image
install, so the versions the suite passed with are the versions users get."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{name}: {line!r} is not pinned with =="
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def direct(name: str) -> list[Requirement]:
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def closure(roots: list[Requirement]) -> set[str]:
    """The installed distributions ``roots`` need, with their extras, all the way down."""
    seen: set[str] = set()
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in seen and not extras:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return seen


def test_the_direct_runtime_dependencies_are_pinned_exactly():
    specifiers = {requirement.name: str(requirement.specifier) for requirement in direct("requirements.in")}
    assert {name: spec for name, spec in specifiers.items() if not re.fullmatch(r"==[^,]+", spec)} == {}


def test_every_runtime_dependency_is_pinned_transitive_ones_included():
    locked = pins("requirements.txt")
    needed = closure(direct("requirements.in"))
    assert needed - locked.keys() == set()
    assert {name: metadata.version(name) for name in needed} == {name: locked[name] for name in needed}


def test_the_test_tools_are_pinned_too_with_the_same_runtime_pins():
    runtime, everything = pins("requirements.txt"), pins("requirements-dev.txt")
    assert {name: everything.get(name) for name in runtime} == runtime
    needed = closure(direct("requirements-dev.in"))
    assert needed - everything.keys() == set()


def test_the_image_and_the_bootstrap_install_the_lock():
    assert "pip install --no-cache-dir -r requirements.txt" in (ROOT / "Dockerfile").read_text()
    assert 'req="${1:-requirements.txt}"' in (ROOT / "bin" / "bootstrap").read_text()
    assert "bin/bootstrap requirements-dev.txt" in (ROOT / "bin" / "test").read_text()

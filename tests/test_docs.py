"""The documentation is in the repository and stays true to it: links lead somewhere, nothing
points outside the checkout, and every setting and command is in the contract."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONTRACT = ROOT / "docs" / "contract.md"
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ["DESIGN" + ".md", "../" + "shared", "/work" + "/"]
# Not ours, or not text: never searched.
SKIPPED_SUFFIXES = {".png", ".jpg", ".ico", ".gz", ".sqlite3", ".woff", ".woff2"}


@cache
def tracked_files() -> list[Path]:
    """The files git tracks or would (not ignored), else every file outside local state."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        files = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        local = {".git", ".venv", "var", "test-output", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not local & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file() and p.suffix not in SKIPPED_SUFFIXES]


def without_code_blocks(text: str) -> str:
    """Markdown text with its fenced code blocks blanked (line numbers kept)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in without_code_blocks(path.read_text()).splitlines():
        if match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            base = slug(match.group(1))
            anchor, n = base, 0
            while anchor in found:  # GitHub numbers repeated headings: name, name-1, name-2
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of each Markdown link outside code."""
    text = without_code_blocks(path.read_text())
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        found += [(number, target) for target in re.findall(r"\]\(([^)\s]+)\)", line)]
    return found


def markdown_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix == ".md"]


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) < 200
    for page in ("architecture", "contract", "operations"):
        assert f"(docs/{page}.md" in (ROOT / "README.md").read_text(), page


def test_no_tracked_file_points_outside_the_repository():
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {needle}" for needle in OUTSIDE if needle in text]
    assert offenders == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_in_the_repository(path):
    broken = []
    for number, target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not linked.is_relative_to(ROOT):
            broken.append(f"{where} (outside the repository)")
        elif not linked.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{where} (no such heading)")
    assert broken == []


def test_the_files_the_docs_name_exist():
    """A module or script named in the docs (`runs/claims.py`, `bin/run`) is where they say."""
    named = re.compile(r"`((?:\.?[\w-]+/)+[\w.-]+\.py|(?:bin|bench|\.ci)/[\w-]+)`")
    missing = []
    for path in DOCS:
        text = without_code_blocks(path.read_text())
        missing += [f"{path.relative_to(ROOT)}: {name}" for name in named.findall(text) if not (ROOT / name).exists()]
    assert missing == []


def test_the_contract_names_every_environment_variable_the_code_reads():
    reads = re.compile(
        r"""(?:env(?:str|bool|int|list|hosts|rate)|_env_int|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    sources = [
        p for p in tracked_files() if p.suffix == ".py" and p.relative_to(ROOT).parts[0] not in ("tests", "bench")
    ]
    names = {name for p in sources for name in reads.findall(p.read_text())}
    assert "CRONTASK_FIRE_LEAD_MS" in names  # the pattern finds them
    contract = CONTRACT.read_text()
    assert sorted(name for name in names if f"`{name}`" not in contract) == []


def test_the_contract_names_every_management_command():
    commands = {
        p.stem
        for p in tracked_files()
        if p.parent.name == "commands" and p.parent.parent.name == "management" and not p.stem.startswith("_")
    }
    assert {"runall", "init_var", "import_jobs"} <= commands
    contract = CONTRACT.read_text()
    assert sorted(name for name in commands if f"`{name}" not in contract) == []

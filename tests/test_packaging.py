"""The built wheel carries every file the package reads: the pages of the web app in their
sub-folders (``pages/settings``, ``pages/engagement`` were missing), the shipped YAML, the
migrations; and nothing of npm's tree (its test fixtures matched a ``**/*.yaml`` glob)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# Files under src/ that are not the package's to ship.
NOT_SHIPPED = {"clm/web/README.md"}


def _tree(into: Path) -> Path:
    """The repository's files as git sees them (tracked, and new ones not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-q",
         "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("clm-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    source = tree / "src"
    wanted = {
        path.relative_to(source).as_posix()
        for path in (source / "clm").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    } - NOT_SHIPPED
    assert sorted(wanted - shipped) == []
    assert [name for name in shipped if "node_modules" in name] == []

"""Packaging: one version string, ``linrank --version``, CHANGELOG.md and CITATION.cff.

The wheel and sdist contents are tested in tests/test_packaging_dist.py; the fresh install of the
wheel is a CI step (``make wheel-check``, .ci/wheel-check).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import linrank
from linrank import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
VERSION_FILE = ROOT / "linrank" / "_version.py"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_is_written_in_one_place():
    """pyproject.toml takes the version from linrank/_version.py (no second copy to drift)."""
    doc = _pyproject()
    assert "version" not in doc["project"]
    assert "version" in doc["project"]["dynamic"]
    assert doc["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "linrank._version.__version__"
    }
    tree = ast.parse(VERSION_FILE.read_text())
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert assign.targets[0].id == "__version__"
    assert linrank.__version__ == assign.value.value
    # a PEP 440 release version
    assert re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", linrank.__version__)


def test_no_other_module_writes_the_version():
    literal = repr(linrank.__version__)[1:-1]
    pattern = re.compile(r"""__version__\s*=|["']""" + re.escape(literal) + r"""["']""")
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "linrank").rglob("*.py"))
        if p != VERSION_FILE and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_installed_metadata_agrees():
    """The installed distribution's metadata carries the same version (reinstall after a bump)."""
    assert metadata.version("linrank") == linrank.__version__


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"linrank {linrank.__version__}"


def test_version_flag_is_top_level_only(capsys):
    """``--version`` belongs to the top level; after a subcommand it is an unknown option."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--version"])
    assert exc.value.code == 2
    assert "--version" in capsys.readouterr().err

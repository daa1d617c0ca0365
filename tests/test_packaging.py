"""Packaging: one version string, ``linrank --version``, CHANGELOG.md and CITATION.cff.

The wheel and sdist contents are tested in tests/test_packaging_dist.py; the fresh install of the
wheel is a CI step (``make wheel-check``, .ci/wheel-check).
"""

from __future__ import annotations

import ast
import re
import subprocess
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


def test_python_dash_m_linrank_is_the_console_script():
    """``python -m linrank --version`` works as ``linrank --version`` does."""
    out = subprocess.run([sys.executable, "-m", "linrank", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"linrank {linrank.__version__}"


def test_version_flag_is_top_level_only(capsys):
    """``--version`` belongs to the top level; after a subcommand it is an unknown option."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--version"])
    assert exc.value.code == 2
    assert "--version" in capsys.readouterr().err


# --- CHANGELOG.md -------------------------------------------------------------------------------

_RELEASE = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2}|unreleased)$")
_SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_changelog_names_the_current_version_first():
    """Keep a Changelog: '## [Unreleased]' or '## [X.Y.Z] - YYYY-MM-DD' headings, newest first,
    only its six kinds of sections; the newest version is the package's."""
    lines = (ROOT / "CHANGELOG.md").read_text().splitlines()
    assert lines[0] == "# Changelog"
    heads = [ln for ln in lines if ln.startswith("## ")]
    versions = [m["version"] for ln in heads if (m := _RELEASE.match(ln))]
    assert all(ln == "## [Unreleased]" or _RELEASE.match(ln) for ln in heads), heads
    assert versions and versions[0] == linrank.__version__
    assert len(set(versions)) == len(versions)
    kinds = {ln[4:] for ln in lines if ln.startswith("### ")}
    assert kinds <= _SECTIONS, kinds - _SECTIONS


# --- CITATION.cff -------------------------------------------------------------------------------

#: Keys of CFF 1.2.0 (its schema's top-level and reference properties, shortened to those a
#: citation of software and of a journal article uses); a misspelt key is not silently ignored.
_CFF_KEYS = {"abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi",
             "identifiers", "keywords", "license", "license-url", "message",
             "preferred-citation", "references", "repository", "repository-artifact",
             "repository-code", "title", "type", "url", "version"}
_REF_KEYS = {"abstract", "authors", "doi", "end", "identifiers", "issn", "issue", "journal",
             "keywords", "month", "notes", "pages", "publisher", "start", "title", "type", "url",
             "volume", "year"}
_PERSON_KEYS = {"family-names", "given-names", "name-particle", "name-suffix", "affiliation",
                "orcid", "email", "website", "alias"}
_ENTITY_KEYS = {"name", "email", "website", "orcid", "address", "city", "country"}


@pytest.fixture(scope="module")
def cff() -> dict:
    yaml = pytest.importorskip("yaml")  # in the test extra: this skip does not happen in CI
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def _check_authors(authors) -> None:
    assert isinstance(authors, list) and authors
    for a in authors:
        if "name" in a:
            assert set(a) <= _ENTITY_KEYS and a["name"].strip()
        else:
            assert set(a) <= _PERSON_KEYS and a["family-names"].strip(), a


def test_citation_is_cff_1_2_0(cff):
    assert cff["cff-version"] == "1.2.0"
    assert set(cff) <= _CFF_KEYS, set(cff) - _CFF_KEYS
    for key in ("message", "title", "authors"):  # required by the schema
        assert cff[key]
    _check_authors(cff["authors"])
    assert cff["type"] == "software"
    refs = cff.get("references", []) + ([cff["preferred-citation"]] if "preferred-citation" in cff
                                        else [])
    for ref in refs:
        assert {"type", "title", "authors"} <= set(ref)  # required by the schema
        _check_authors(ref["authors"])
        assert set(ref) <= _REF_KEYS, set(ref) - _REF_KEYS
        for ident in ref.get("identifiers", []):
            assert ident["type"] in {"doi", "url", "swh", "other"} and ident["value"]


def test_citation_agrees_with_the_package(cff):
    assert str(cff["version"]) == linrank.__version__
    assert cff["license"] == _pyproject()["project"]["license"]


def test_citation_names_the_paper(cff):
    """The paper linrank implements, as docs/theory.rst cites it."""
    (paper,) = [r for r in cff["references"] if "global minimizers" in r["title"]]
    assert paper["type"] == "article"
    assert [a["family-names"] for a in paper["authors"]] == [
        "Bah", "Rauhut", "Terstiege", "Westdickenberg"]
    assert (paper["journal"], paper["volume"], paper["year"]) == (
        "Information and Inference: A Journal of the IMA", 11, 2022)
    assert any("1910.05505" in i["value"] for i in paper["identifiers"])
    theory = " ".join((ROOT / "docs" / "theory.rst").read_text().split())
    assert " ".join(paper["title"].split()) in theory

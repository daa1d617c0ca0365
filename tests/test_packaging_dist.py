"""The sdist and the wheel that ``python -m build`` makes: what they hold.

One build (without isolation, offline: ``build`` and ``setuptools`` are in the test extra) of a
copy of the source tree, so that nothing is written into the checkout. The copy gets an extra
probe package (a subpackage with ``__init__.py``, one without, data files in both) to show that a
new subpackage and its data reach the wheel without an edit of pyproject.toml. Installing the
wheel into a new environment and running it is ``make wheel-check`` (a CI step).
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import linrank

ROOT = Path(__file__).resolve().parents[1]
#: Files of the probe added to the copy (paths below linrank/).
PROBE = {
    "zz_probe/__init__.py": "",
    "zz_probe/spec.toml": "a = 1\n",
    "zz_probe/inner/__init__.py": "",
    "zz_probe/inner/grid.csv": "x,y\n1,2\n",
    "zz_probe/templates/report.md.tmpl": "# {title}\n",  # a data folder without __init__.py
}
#: What the sdist must carry besides the package: tests, documentation sources, examples and
#: benchmarks, as scientific-Python projects' sdists do (so the suite can run from it).
SDIST_REQUIRED = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "CITATION.cff", "BENCHMARKS.md",
                  "MANIFEST.in", "tests/conftest.py", "tests/test_packaging_dist.py",
                  "docs/conf.py", "docs/index.rst", "docs/theory.rst", "benchmarks/run_all.py")
_TOP_LEVEL_SKIP = {".git", ".venv", "venv", "build", "dist", "results"}
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "_build"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory) == ROOT
    return {n for n in names if n in _SKIP or (top and n in _TOP_LEVEL_SKIP)
            or n.endswith((".egg-info", ".pyc"))}


def package_files(root: Path) -> set[str]:
    """Every file of the package below ``root`` (paths like 'linrank/flows/__init__.py'),
    compiled files left out."""
    return {p.relative_to(root).as_posix() for p in (root / "linrank").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    for rel, text in PROBE.items():
        (src / "linrank" / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / "linrank" / rel).write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), str(src)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp / "out").glob("*.whl")
    (sdist,) = (tmp / "out").glob("*.tar.gz")
    return {"src": src, "wheel": wheel, "sdist": sdist}


def test_names_carry_the_version(dists):
    v = linrank.__version__
    assert dists["wheel"].name == f"linrank-{v}-py3-none-any.whl"
    assert dists["sdist"].name == f"linrank-{v}.tar.gz"


def test_wheel_holds_every_package_file_and_nothing_else(dists):
    """Every module, every subpackage (with or without __init__.py) and every data file of the
    source tree is in the wheel, the probe's new subpackages included; no compiled files."""
    with zipfile.ZipFile(dists["wheel"]) as zf:
        names = set(zf.namelist())
    in_wheel = {n for n in names if n.startswith("linrank/")}
    expected = package_files(dists["src"])
    assert {"linrank/" + rel for rel in PROBE} <= expected
    assert expected - in_wheel == set(), "missing from the wheel"
    assert in_wheel - expected == set(), "in the wheel but not in the source tree"
    # the real tree's packages (not only the copy's): e.g. linrank/flows/__init__.py
    inits = {p for p in package_files(ROOT) if p.endswith("/__init__.py")}
    assert "linrank/flows/__init__.py" in inits and inits <= in_wheel
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {n for n in names if not n.startswith("linrank/")} <= {
        f"linrank-{linrank.__version__}.dist-info/{f}" for f in
        ("METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt", "licenses/LICENSE")}


def test_wheel_metadata(dists):
    with zipfile.ZipFile(dists["wheel"]) as zf:
        prefix = f"linrank-{linrank.__version__}.dist-info/"
        meta = email.parser.Parser().parsestr(zf.read(prefix + "METADATA").decode())
        entry_points = zf.read(prefix + "entry_points.txt").decode()
    assert meta["Name"] == "linrank" and meta["Version"] == linrank.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta.get_all("License-File") == ["LICENSE"]  # the license text travels with the wheel
    assert meta["Requires-Python"] == ">=3.10"
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("pymanopt==2.2.1") for r in requires)
    assert "[console_scripts]" in entry_points and "linrank = linrank.cli:main" in entry_points


def test_sdist_holds_package_tests_and_docs(dists):
    with tarfile.open(dists["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    top = f"linrank-{linrank.__version__}"
    assert package_files(dists["src"]) <= names
    assert set(SDIST_REQUIRED) <= names, set(SDIST_REQUIRED) - names
    examples = {p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").iterdir() if p.is_file()}
    assert examples <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")
                or n.startswith(("docs/_build", "benchmarks/results", ".git"))], top

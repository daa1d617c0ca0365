"""README.md and the user guide (docs/guide/): their snippets run and say what they print, their
command lines parse, and README's links lead somewhere.

Snippets: every ```python block of README.md and every ``.. code-block:: python`` of
docs/guide/*.rst runs in a fresh namespace. A bare expression whose line ends with a comment that
starts with a number (``x  # 0.031``, ``x  # Corollary 8: 1.6e-11``), a literal list
(``# [(0.0, 1), (0.579, 2)]``) or a shape (``# 527 x 3``) is checked against it: numbers to one
unit in the last digit shown; numbers below 1e-6 (rounding-level errors, whose digits depend on
the BLAS kernel) as upper bounds within a factor 10. A snippet preceded by the marker
``<!-- long-run -->`` (README) or ``.. long-run`` (guide) is only compiled, never run.

Command lines: every ``linrank ...`` line of a shell block is parsed by the ``linrank`` parser.

Links: every relative link and image of README.md names a file that exists; an anchor names a
heading of the target; a link to a page of docs/ names a page that the Sphinx build includes
(listed in a toctree).
"""

from __future__ import annotations

import ast
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

from linrank.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"


# ------------------------------------------------------------------ extracting blocks
def markdown_blocks(text: str, languages: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(code, long_run) of the fenced blocks of ``text`` whose language is in ``languages``."""
    out = []
    for m in re.finditer(r"(?:(<!-- long-run -->)\n)?^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        if m.group(2) in languages:
            out.append((m.group(3), bool(m.group(1))))
    return out


def rst_blocks(text: str, languages: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(code, long_run) of the ``code-block`` directives of ``text`` in ``languages``."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = re.match(r"^\.\. code-block:: (\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        before = [ln for ln in lines[:i] if ln.strip()]
        long_run = bool(before) and before[-1].strip() == ".. long-run"
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
            body.append(lines[i])
            i += 1
        if m.group(1) in languages:
            out.append((textwrap.dedent("\n".join(body)).strip("\n") + "\n", long_run))
    return out


def all_blocks(languages: tuple[str, ...]) -> list[tuple[str, str, bool]]:
    blocks = [(f"README.md[{i}]", code, long_run)
              for i, (code, long_run) in enumerate(markdown_blocks(README.read_text(), languages))]
    for page in sorted(GUIDE.glob("*.rst")):
        blocks += [(f"docs/guide/{page.name}[{i}]", code, long_run)
                   for i, (code, long_run) in enumerate(rst_blocks(page.read_text(), languages))]
    return blocks


def _once(blocks):
    """Each distinct snippet once (README repeats a snippet of the guide), named by all its places."""
    seen: dict[str, list] = {}
    for where, code, long_run in blocks:
        seen.setdefault(code, [[], code, long_run])[0].append(where)
    return [(" = ".join(places), code, long_run) for places, code, long_run in seen.values()]


PYTHON = _once(all_blocks(("python",)))
SHELL = all_blocks(("", "shell", "console", "bash"))


# ------------------------------------------------------------------ printed values
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def _unit_of_last_digit(shown: str) -> float:
    mant, _, exp = shown.lower().partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** (int(exp or 0) - decimals)


def _check_number(value: float, shown: str, where: str) -> None:
    x = float(shown)
    if abs(x) < 1e-6:
        assert 0 <= value <= 10 * abs(x), f"{where}: {value!r} is not below 10 x {shown}"
    else:
        assert abs(value - x) <= _unit_of_last_digit(shown), f"{where}: {value!r} shown as {shown}"


def _check_literal(value, node: ast.AST, comment: str, where: str) -> None:
    if isinstance(node, (ast.List, ast.Tuple)):
        assert isinstance(value, (list, tuple)) and len(value) == len(node.elts), (where, value)
        for v, n in zip(value, node.elts):
            _check_literal(v, n, comment, where)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        shown = ast.get_source_segment(comment, node)
        _check_number(float(value), shown, where)
    else:
        raise AssertionError(f"{where}: cannot compare {comment!r}")


def check_comment(value, comment: str, where: str) -> bool:
    """Check ``value`` against what the comment says it is; False if the comment states nothing."""
    comment = comment.strip()
    shape = re.match(r"^(\d+) x (\d+)\b", comment)
    if shape and hasattr(value, "shape"):
        assert tuple(value.shape) == (int(shape.group(1)), int(shape.group(2))), (where, value.shape)
        return True
    if comment.startswith(("[", "(")):
        depth, length = 0, len(comment)
        for i, ch in enumerate(comment):
            depth += (ch in "[(") - (ch in ")]")
            if depth == 0:
                length = i + 1
                break
        literal = comment[:length]
        _check_literal(value, ast.parse(literal, mode="eval").body, literal, where)
        return True
    m = re.match(rf"^(?:[^:]*:\s*)?({_NUMBER})(?![\w.])", comment)
    if m and np.ndim(value) == 0 and isinstance(value, (int, float, np.number)):
        _check_number(float(value), m.group(1), where)
        return True
    return False


def run_snippet(code: str, where: str) -> int:
    """Run ``code`` statement by statement; check the commented values; return how many."""
    tree = ast.parse(code)
    lines = code.splitlines()
    namespace: dict = {"__name__": "__snippet__"}
    checked = 0
    for node in tree.body:
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), where, "eval"), namespace)
            last = lines[node.end_lineno - 1]
            if "#" in last:
                checked += check_comment(value, last.split("#", 1)[1], f"{where}: {last.strip()}")
        else:
            exec(compile(ast.Module([node], type_ignores=[]), where, "exec"), namespace)
    return checked


@pytest.mark.parametrize("where,code,long_run", PYTHON, ids=[b[0] for b in PYTHON])
def test_python_snippet_runs_and_prints_what_it_says(where, code, long_run):
    if long_run:
        compile(code, where, "exec")
        return
    if "nuclear_norm_completion(" in code:
        pytest.importorskip("cvxpy")
    run_snippet(code, where)


def test_snippets_exist_where_the_guide_promises_them():
    places = [p for w, _, _ in PYTHON for p in w.split(" = ")]
    assert {p.split("[")[0] for p in places} >= {
        "README.md", "docs/guide/manifold.rst", "docs/guide/flows.rst"}
    assert sum(p.startswith("README.md") for p in places) == 2


def test_comment_checks_can_fail():
    assert check_comment(0.0314, " 0.031 at t = 100", "x")
    with pytest.raises(AssertionError):
        check_comment(0.0334, " 0.031 at t = 100", "x")
    with pytest.raises(AssertionError):
        check_comment(3.73e-4, " 3.6e-4", "x")
    with pytest.raises(AssertionError):
        check_comment(2e-10, " Corollary 8: 1.6e-11", "x")
    assert check_comment(1.6e-12, " Corollary 8: 1.6e-11", "x")
    with pytest.raises(AssertionError):
        check_comment([(0.0, 1), (0.59, 2)], " [(0.0, 1), (0.579, 2)]: when", "x")
    with pytest.raises(AssertionError):
        check_comment(np.zeros((526, 3)), " 527 x 3 (one row)", "x")
    assert not check_comment(1.0, " the PCA projection", "x")
    assert run_snippet("x = 2\nx / 3  # 0.67\n", "y") == 1
    with pytest.raises(AssertionError):
        run_snippet("x = 2\nx / 3  # 0.68\n", "y")


# ------------------------------------------------------------------ command lines
COMMANDS = [(where, line) for where, code, _ in SHELL
            for line in code.splitlines() if line.strip().startswith("linrank ")]


@pytest.mark.parametrize("where,line", COMMANDS, ids=[f"{w}:{ln}" for w, ln in COMMANDS])
def test_command_lines_parse(where, line):
    argv = shlex.split(line, comments=True)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{where}: {line!r} does not parse (exit {exc.code})")


def test_readme_shows_the_two_commands_and_the_cli():
    shell = "\n".join(code for where, code, _ in SHELL if where.startswith("README.md"))
    assert "make test\nmake reproduce\n" in shell  # CI runs README's test command (.ci/run)
    assert any(w.startswith("README.md") for w, _ in COMMANDS)


def test_readme_has_one_table_row_per_subcommand():
    text = README.read_text()
    from linrank.devtools import cli_options

    for name in cli_options._subparsers(build_parser()):
        assert len(re.findall(rf"^\| `linrank {name}` \|", text, re.M)) == 1, name


# ------------------------------------------------------------------ links
def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, markup and punctuation dropped."""
    title = re.sub(r"[`*_]", "", title.strip().lower())
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def markdown_anchors(text: str) -> set[str]:
    return {github_slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def rst_anchors(text: str) -> set[str]:
    lines = text.splitlines()
    titles = [lines[i] for i in range(len(lines) - 1)
              if lines[i].strip() and re.fullmatch(r"([=\-~^\"'#*+])\1{2,}", lines[i + 1])
              and len(lines[i + 1]) >= len(lines[i].rstrip())]
    return {github_slug(t) for t in titles}


def toctree_pages() -> set[str]:
    """Every page of docs/ that a toctree lists (paths relative to docs/, without .rst)."""
    docs = ROOT / "docs"
    pages = {"index"}
    for rst in docs.rglob("*.rst"):
        if "_build" in rst.parts:
            continue
        base = rst.parent.relative_to(docs)
        for m in re.finditer(r"^\.\. toctree::\n((?:[ \t]+.*\n|\n)+)", rst.read_text(), re.M):
            for entry in m.group(1).splitlines():
                entry = entry.strip()
                if entry and not entry.startswith(":"):
                    pages.add(str(Path(base, entry).as_posix()).removeprefix("./"))
    return {str(Path(p)) for p in pages}


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def readme_links() -> list[str]:
    text = re.sub(r"^```.*?^```$", "", README.read_text(), flags=re.M | re.S)
    return LINK.findall(text)


def test_readme_links_lead_somewhere():
    links = readme_links()
    assert len(links) >= 10
    pages = toctree_pages()
    text = README.read_text()
    for link in links:
        if re.match(r"^[a-z]+://", link):
            continue  # not checked: no network in the tests
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else README
        assert target.exists(), f"README links to {link!r}: no such file"
        assert target.resolve().is_relative_to(ROOT), link
        if anchor:
            body = target.read_text()
            anchors = markdown_anchors(body) if target.suffix == ".md" else rst_anchors(body)
            assert anchor in anchors, f"README links to {link!r}: no heading with that anchor"
        if path.startswith("docs/") and target.suffix == ".rst":
            page = str(Path(path).relative_to("docs").with_suffix(""))
            assert page in pages, f"README links to {link!r}, which the docs build does not include"
    assert "docs/fig1.png" in links and "docs/guide/index.rst" in links
    assert text.count("\n") <= 260, "README is the front door: keep it short, move text to the guide"


def test_link_checks_can_fail(tmp_path):
    assert "quick-start" in markdown_anchors("## Quick start\n")
    assert "reproducing-section-7-make-reproduce" in markdown_anchors(
        "## Reproducing Section 7 (`make reproduce`)\n")
    assert "gradient-flows-and-integrators" in rst_anchors(
        "Gradient flows and integrators\n==============================\n")
    assert "guide/flows" in toctree_pages() and "guide/missing" not in toctree_pages()
    assert LINK.findall("see [x](docs/nothere.rst) and ![f](docs/f.png)") == [
        "docs/nothere.rst", "docs/f.png"]


# ------------------------------------------------------------------ names
# Named in README's "Where new code goes" and docs/guide/layout.rst as the layout being built
# (the applications' shared package); resolved once that package exists.
PLANNED = {"linrank.experiments.shared"}


def resolve(dotted: str):
    """The object a dotted name ``linrank.a.b`` names: the longest importable module prefix, then
    attributes; AttributeError or ImportError if it names nothing."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def dotted_names() -> set[str]:
    texts = [README.read_text()] + [p.read_text() for p in GUIDE.glob("*.rst")]
    return {m.group(0).rstrip(".") for t in texts
            for m in re.finditer(r"\blinrank(?:\.[A-Za-z_]\w*)+", t)}


def test_every_dotted_name_in_readme_and_guide_exists():
    names = dotted_names()
    assert {"linrank.diagnostics", "linrank.data", "linrank.linalg.thin_product"} <= names
    missing = []
    for name in sorted(names - PLANNED):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"README or the guide names what does not exist: {missing}"
    with pytest.raises(AttributeError):
        resolve("linrank.linalg.no_such_function")

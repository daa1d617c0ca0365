"""The old import paths of the problems and the flows' adapter (linrank.problems_base,
problems_completion, problems_sensing, problems_factorization, problem_data): each still imports,
warns with a DeprecationWarning naming the new path, and gives the same objects as the new module;
nothing inside the repository imports them any more."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import linrank
from linrank.devtools import layout

OLD_TO_NEW = {
    "linrank.problems_base": "linrank.problems.base",
    "linrank.problems_completion": "linrank.problems.completion",
    "linrank.problems_sensing": "linrank.problems.sensing",
    "linrank.problems_factorization": "linrank.problems",
    "linrank.problem_data": "linrank.flows.problem_data",
}

#: The public names each old module had (its __all__ before the move): all must still be there.
OLD_NAMES = {
    "linrank.problems_base": [
        "FactorizationProblem", "LossOverflowError", "REDUCTIONS", "check_manifold",
        "check_reduction", "half_sum_of_squares", "tangent",
    ],
    "linrank.problems_completion": [
        "MatrixCompletionProblem", "matrix_completion_problem", "observed_entries",
    ],
    "linrank.problems_sensing": ["MatrixSensingProblem", "matrix_sensing_problem"],
    "linrank.problems_factorization": [
        "REDUCTIONS", "FactorizationProblem", "MatrixCompletionProblem", "MatrixSensingProblem",
        "matrix_completion_problem", "matrix_sensing_problem", "observed_entries",
    ],
    "linrank.problem_data": ["ProblemData"],
}

ROOT = Path(__file__).resolve().parents[1]


def _fresh_import(old, monkeypatch):
    """Import ``old`` anew (as a first import would), whatever imported it before."""
    monkeypatch.delitem(sys.modules, old, raising=False)
    __import__(old)  # an import statement's own machinery (importlib.import_module adds a frame)
    return sys.modules[old]


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_old_path_warns_and_gives_the_same_objects(old, monkeypatch):
    new = importlib.import_module(OLD_TO_NEW[old])
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} is deprecated: import from "
                      rf"{re.escape(OLD_TO_NEW[old])} instead$") as record:
        shim = _fresh_import(old, monkeypatch)
    # the warning points at the importing line (here), not into the shim or importlib
    assert [Path(w.filename).name for w in record] == [Path(__file__).name]
    assert set(OLD_NAMES[old]) <= set(shim.__all__)
    assert shim.__all__ == new.__all__
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(new, name), name
    star: dict = {}
    with pytest.warns(DeprecationWarning):
        monkeypatch.delitem(sys.modules, old)
        exec(f"from {old} import *", star)  # noqa: S102
    assert {k: v for k, v in star.items() if not k.startswith("__")} == {
        n: getattr(new, n) for n in new.__all__
    }
    with pytest.raises(AttributeError):
        shim.no_such_name  # noqa: B018


def test_private_helpers_stay_reachable_through_the_shim(monkeypatch):
    with pytest.warns(DeprecationWarning):
        shim = _fresh_import("linrank.problems_completion", monkeypatch)
    from linrank.problems import completion

    assert shim._gather_dot is completion._gather_dot


def test_new_paths_and_linrank_import_without_deprecation_warnings():
    code = (
        "import linrank, linrank.problems, linrank.problems.base, linrank.problems.callbacks, "
        "linrank.problems.autograd, linrank.problems.least_squares, linrank.problems.completion, "
        "linrank.problems.sensing, linrank.flows, linrank.flows.problem_data, linrank.cli, "
        "linrank.baselines, linrank.experiments.compare.problems"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error:linrank:DeprecationWarning", "-c", code],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "deprecated" not in out.stderr


def test_nothing_in_the_repository_uses_the_old_paths():
    # imports inside linrank, resolved by the layout scanner (relative ones included)
    scanned = layout.scan()
    found = [f"{e.source}:{e.line}: imports {e.target}" for e in scanned.edges
             if e.target in OLD_TO_NEW and e.source not in OLD_TO_NEW]
    # any dotted mention in code; in the docs, any automodule or cross-reference (the prose that
    # names the old paths as deprecated is fine)
    olds = r"linrank\.(problems_base|problems_completion|problems_sensing|problems_factorization|" \
        r"problem_data)\b"
    in_code, in_docs = re.compile(olds), re.compile(r"(::\s*|:`~?)" + olds)
    for folder in ("linrank", "tests", "examples", "benchmarks", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if (path.suffix not in {".py", ".rst", ".md"} or "_build" in path.parts
                    or path == Path(__file__).resolve()
                    or path.stem in {old.split(".")[1] for old in OLD_TO_NEW}):
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if (in_code if path.suffix == ".py" else in_docs).search(line):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_linrank_top_level_names_are_the_package_objects():
    from linrank import problems

    for name in ("ambient_problem", "autograd_problem", "least_squares_problem",
                 "matrix_completion_problem", "matrix_sensing_problem"):
        assert getattr(linrank, name) is getattr(problems, name)


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_old_path_is_the_new_module_so_monkeypatches_reach_both(old, monkeypatch):
    new = importlib.import_module(OLD_TO_NEW[old])
    with pytest.warns(DeprecationWarning):
        shim = _fresh_import(old, monkeypatch)
    assert shim is new
    name = new.__all__[0]
    sentinel = object()
    monkeypatch.setattr(shim, name, sentinel)  # patched through the old name ...
    assert getattr(new, name) is sentinel  # ... is seen through the new one

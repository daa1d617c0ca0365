"""The package layout (issues 10 and 20): no import cycle, the core in layers, applications that
do not import each other, modules under 600 lines, no private names imported across modules.
The same check runs on its own as ``python -m linrank.devtools.layout``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import linrank
from linrank.devtools import layout


def test_layout_has_no_violations():
    assert layout.LINE_LIMIT_EXEMPT == {}  # every module within the 600-line limit
    found = layout.violations(layout.scan())
    assert found == [], "\n".join(found)


def test_core_layers_import_only_lower_layers():
    graph = layout.scan().graph()
    assert graph["linrank.linalg"] == set()
    assert graph["linrank.factorgrad"] == set()
    assert graph["linrank.fixedrank"] == {"linrank.factorgrad", "linrank.linalg"}
    assert graph["linrank.retractions"] == {"linrank.fixedrank"}
    assert graph["linrank.metric"] == {"linrank.fixedrank"}
    assert graph["linrank.divided_differences"] == {"linrank.metric"}
    assert graph["linrank.connection"] == {
        "linrank.fixedrank",
        "linrank.metric",
        "linrank.divided_differences",
    }
    assert graph["linrank.manifold"] <= set(layout.CORE_LAYERS)
    assert graph["linrank.data"] == {"linrank.fixedrank", "linrank.linalg"}
    assert graph["linrank.network"] <= {"linrank.data", "linrank.fixedrank"}


def test_problems_sit_on_the_core_and_the_flows_adapter_inside_flows():
    graph = layout.scan().graph()
    problems = {name for name in graph if name.startswith("linrank.problems.")}
    assert {"linrank.problems.base", "linrank.problems.callbacks", "linrank.problems.autograd",
            "linrank.problems.least_squares", "linrank.problems.completion",
            "linrank.problems.sensing"} <= problems
    allowed = set(layout.PACKAGE_LAYERS["linrank.problems"])
    for name in problems | {"linrank.problems"}:
        outside = {t for t in graph[name] if not t.startswith("linrank.problems")}
        assert outside <= allowed, (name, outside - allowed)
    assert graph["linrank.flows.problem_data"] <= set(layout.CORE_LAYERS)
    # the flows use the new modules, not the deprecated aliases at the old paths
    assert {"linrank.flows.problem_data", "linrank.problems.base"} <= set().union(
        *(graph[n] for n in graph if n.startswith("linrank.flows."))
    )


def test_checker_finds_a_package_layer_break(tmp_path):
    scanned = _package(
        tmp_path,
        {
            "__init__.py": "",
            "manifold.py": "",
            "flows.py": "",
            "problems/__init__.py": "from .base import B\n",
            "problems/base.py": "from ..manifold import M\nfrom ..flows import f\nB = 1\n",
        },
    )
    found = layout.violations(scanned, exempt={})
    assert found == [
        "linrank.problems.base:2: linrank.problems imports linrank.flows (allowed: its own "
        "modules, " + ", ".join(layout.PACKAGE_LAYERS["linrank.problems"]) + ")"
    ]


def _package(tmp_path, files):
    root = tmp_path / "linrank"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return layout.scan(root)


def test_applications_are_packages_that_do_not_import_each_other():
    scanned = layout.scan()
    for app in layout.APPLICATIONS:
        assert f"linrank.experiments.{app}" in scanned.lines  # a package with an __init__
        assert f"linrank.commands.{app}" in scanned.lines  # and its command
        assert layout.application_of(f"linrank.experiments.{app}.app") == app
    assert layout.application_of(layout.SHARED + ".outputs") is None
    graph = scanned.graph()
    shared = [m for m in graph if m.startswith(layout.SHARED)]
    assert len(shared) >= 7
    for m in shared:
        assert all(layout.application_of(t) is None for t in graph[m]), m


_APPS = {
    "__init__.py": "",
    "linalg.py": "",
    "experiments/__init__.py": "from .reproduce import run\n",
    "experiments/shared/__init__.py": "",
    "experiments/shared/outputs.py": "LOCK = 1\n",
    "experiments/reproduce/__init__.py": "from .app import run\n",
    "experiments/reproduce/app.py": "from ..shared.outputs import LOCK\nfrom ...linalg import *\n"
                                    "def run():\n    return LOCK\n",
    "experiments/sweep/__init__.py": "",
    "commands/__init__.py": "",
    "commands/sweep.py": "from ..experiments.sweep import app\n",
}


def test_checker_accepts_applications_on_the_core_and_shared(tmp_path):
    files = dict(_APPS, **{"experiments/sweep/app.py": "from ..shared import outputs\n"})
    assert layout.violations(_package(tmp_path, files), exempt={}) == []


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        # an application importing another application: relative, absolute, lazy, via commands
        ("experiments/sweep/app.py", "from ..reproduce.app import run\n",
         "application sweep imports application reproduce"),
        ("experiments/sweep/app.py", "def f():\n    import linrank.experiments.reproduce\n",
         "application sweep imports application reproduce"),
        ("experiments/sweep/app.py", "from .. import reproduce\n",
         "application sweep imports application reproduce"),
        ("commands/compare.py", "from ..experiments.sweep import app\n",
         "application compare imports application sweep"),
        # the experiments' facade pulls in the reproduction
        ("experiments/sweep/app.py", "from .. import shared\nfrom linrank.experiments import run\n",
         "imports linrank.experiments (import the application"),
        # shared and the core below the applications
        ("experiments/shared/locks.py", "from ..sweep import app\n",
         "linrank.experiments.shared imports application sweep"),
        ("metric.py", "from .experiments.shared import outputs\n",
         "core module imports linrank.experiments.shared.outputs"),
        ("experiments/sweep/app.py", "from ..shared.outputs import _hidden\n",
         "private name(s) _hidden"),
    ],
)
def test_checker_refuses_an_application_importing_another(tmp_path, path, text, message):
    files = dict(_APPS, **{"experiments/sweep/app.py": "", path: text})
    found = layout.violations(_package(tmp_path, files), exempt={})
    assert any(message in v for v in found), found


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    scanned = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from .b import f\n",
            "b.py": "def f():\n    from .a import g\n    return g\n",
        },
    )
    cycle = layout.find_cycle(scanned.graph())
    assert cycle is not None and set(cycle) == {"linrank.a", "linrank.b"}
    assert any("import cycle" in v for v in layout.violations(scanned, exempt={}))


def test_checker_finds_private_imports_long_modules_and_layer_breaks(tmp_path):
    scanned = _package(
        tmp_path,
        {
            "__init__.py": "",
            "fixedrank.py": "from .metric import w\n",
            "metric.py": "w = 1\n_x = 2\n",
            "user.py": "from linrank.metric import _x\n" + "y = 1\n" * 600,
        },
    )
    found = layout.violations(scanned, exempt={})
    assert any("private name(s) _x" in v for v in found)
    assert any(v.startswith("linrank.user: 601 lines") for v in found)
    assert any("core layer imports linrank.metric" in v for v in found)


def test_layout_command_runs_on_its_own():
    out = subprocess.run(
        [sys.executable, "-m", "linrank.devtools.layout"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "layout OK" in out.stdout


@pytest.mark.parametrize(
    "name",
    ["LinearData", "as_data", "gaussian_data", "top_projector", "rank_constrained_minimizer"],
)
def test_data_names_moved_with_a_deprecation(name):
    network = importlib.import_module("linrank.network")
    data = importlib.import_module("linrank.data")
    with pytest.warns(DeprecationWarning, match=f"linrank.network.{name} is deprecated"):
        old = getattr(network, name)
    assert old is getattr(data, name) is getattr(linrank, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(linrank, name)  # the top-level name does not warn
    with pytest.raises(AttributeError):
        network.no_such_name  # noqa: B018

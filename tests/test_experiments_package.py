"""linrank.experiments as a package of applications (issue 20): each application's API, and the
old module paths, which work for one version with a DeprecationWarning
(linrank.experiments.deprecated)."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import linrank
import linrank.experiments as experiments
from linrank.experiments import deprecated
from linrank.experiments.shared import families, starts


def test_public_names_kept():
    assert experiments.__all__ == ["RunRecord", "RunSpec", "Settings", "default_specs",
                                   "perturbation_specs", "run_spec", "ReproductionResult",
                                   "reproduce"]
    from linrank.experiments.reproduce import app

    assert experiments.reproduce is app.reproduce  # a function, as before the move
    for name in ("compare", "sweep", "sweep_rerun", "sweep_report", "search"):
        assert callable(getattr(linrank, name)), name
    for app_name in ("reproduce", "compare", "sweep", "search"):
        pkg = importlib.import_module(f"linrank.experiments.{app_name}")
        assert callable(getattr(pkg, app_name))
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None, (app_name, name)


def _import_fresh(name):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_old_path_warns_and_is_the_new_module():
    with pytest.warns(DeprecationWarning, match="linrank.experiments.families is deprecated "
                      r"\(moved to linrank.experiments.shared.families\)"):
        old = _import_fresh("linrank.experiments.families")
    assert old is families  # one module object: monkeypatching either name patches both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sys.modules.pop("linrank.experiments.starts", None)
        from linrank.experiments.starts import condition_47
    assert condition_47 is starts.condition_47


@pytest.mark.parametrize("old", sorted(deprecated.MOVED))
def test_every_old_path_resolves(old):
    new = importlib.import_module(f"linrank.experiments.{deprecated.MOVED[old]}")
    with pytest.warns(DeprecationWarning, match=f"linrank.experiments.{old} is deprecated"):
        assert _import_fresh(f"linrank.experiments.{old}") is new


def test_unknown_names_are_not_served():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("linrank.experiments.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("linrank.experiments.shared.families_old")

"""The module paths of ``linrank.experiments`` before the applications became packages.

``import linrank.experiments.families`` (and every other old path in :data:`MOVED`) still works
for one version: it warns with a :class:`DeprecationWarning` naming the new path and gives the
module at the new path itself (the same object, so attributes set through either name are
seen through both). The old paths are served by an import finder placed last in
:data:`sys.meta_path` (a module file at an old path would win), so that no file stands at the
old paths. The four old modules ``compare``, ``sweep``, ``search`` and ``reproduce`` are now the
applications' packages, which export the same public names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install"]

_PREFIX = "linrank.experiments."

#: old module name (below linrank.experiments) -> new module name (below linrank.experiments)
MOVED: dict[str, str] = {
    **{m: f"shared.{m}" for m in ("outputs", "sealed", "resources", "starts", "startfile",
                                  "families", "hypotheses")},
    **{m: f"reproduce.{m}" for m in ("paper", "plan", "driver", "verdicts", "report", "figures",
                                     "limits", "amended")},
    **{f"compare_{m}": f"compare.{m}" for m in ("problems", "record", "report", "solvers")},
    **{f"sweep_{m}": f"sweep.{m}" for m in ("grid", "run", "report")},
    **{f"search_{m}": f"search.{m}" for m in ("objective", "report")},
}


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder, replaced in sys.modules by exec_module

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        warnings.warn(f"{old} is deprecated (moved to {self.new}); import it from there",
                      DeprecationWarning, stacklevel=2)
        # the import system returns what sys.modules holds under the old name after this call
        sys.modules[old] = importlib.import_module(self.new)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        new = MOVED.get(fullname[len(_PREFIX):])
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(_PREFIX + new))


def install() -> None:
    """Serve the old paths (idempotent; called by ``linrank.experiments`` on import)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

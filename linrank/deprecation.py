"""Deprecated aliases of moved modules: a module left at an old import path warns once when
imported and hands out the objects of the module that replaced it."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["moved_module"]


def moved_module(old: str, new: ModuleType) -> Callable[[str], Any]:
    """Warn that module ``old`` moved to ``new`` and return the ``__getattr__`` of the alias.

    Call it at the top level of the module at the old path (after ``from <new> import *``):
    the DeprecationWarning "<old> is deprecated: import from <new> instead" points at the line
    that imported the old path. The import then gives ``new`` itself (``sys.modules[old]`` is
    set to it), so that an attribute set through the old name (a monkeypatch) is seen through
    the new one and the reverse; the returned function forwards attributes to ``new`` for a
    caller that kept the alias module object.
    """
    if not isinstance(old, str) or not isinstance(new, ModuleType):
        raise TypeError("moved_module expects the old module's name (str) and the new module")
    # stacklevel 3: this function, the alias module's body, then the importing line (the
    # warnings module skips importlib's own frames)
    warnings.warn(
        f"{old} is deprecated: import from {new.__name__} instead", DeprecationWarning, stacklevel=3
    )

    # the import system returns what sys.modules holds under the old name once the body ran
    sys.modules[old] = new

    def __getattr__(name: str) -> Any:
        return getattr(new, name)

    return __getattr__

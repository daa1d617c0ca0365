"""Deprecated alias of :mod:`linrank.problems.base`,
which replaced it (this module goes in the next version)."""

from .deprecation import moved_module
from .problems import base as _new
from .problems.base import *  # noqa: F403
from .problems.base import __all__  # noqa: F401

__getattr__ = moved_module("linrank.problems_base", _new)

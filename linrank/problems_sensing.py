"""Deprecated alias of :mod:`linrank.problems.sensing`,
which replaced it (this module goes in the next version)."""

from .deprecation import moved_module
from .problems import sensing as _new
from .problems.sensing import *  # noqa: F403
from .problems.sensing import __all__  # noqa: F401

__getattr__ = moved_module("linrank.problems_sensing", _new)

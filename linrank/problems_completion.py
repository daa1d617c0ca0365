"""Deprecated alias of :mod:`linrank.problems.completion`,
which replaced it (this module goes in the next version)."""

from .deprecation import moved_module
from .problems import completion as _new
from .problems.completion import *  # noqa: F403
from .problems.completion import __all__  # noqa: F401

__getattr__ = moved_module("linrank.problems_completion", _new)

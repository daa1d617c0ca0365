"""Deprecated alias of :mod:`linrank.problems`,
which replaced it (this module goes in the next version)."""

from . import problems as _new
from .deprecation import moved_module
from .problems import *  # noqa: F403
from .problems import __all__  # noqa: F401

__getattr__ = moved_module("linrank.problems_factorization", _new)

"""Deprecated alias of :mod:`linrank.flows.problem_data`,
which replaced it (this module goes in the next version)."""

from .deprecation import moved_module
from .flows import problem_data as _new
from .flows.problem_data import *  # noqa: F403
from .flows.problem_data import __all__  # noqa: F401

__getattr__ = moved_module("linrank.problem_data", _new)

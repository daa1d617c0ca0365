"""Subcommands of the ``linrank`` tool (see :mod:`linrank.cli`) and their shared argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_at_least(lowest: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``lowest`` with a message that says so."""
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        lowest, f"an integer >= {lowest}"
    )

    def parse(text: str) -> int:
        try:
            val = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if val < lowest:
            raise argparse.ArgumentTypeError(f"expected {what}, got {val}")
        return val

    parse.__name__ = "non-negative int" if lowest == 0 else f"int >= {lowest}"
    return parse


non_negative_int = int_at_least(0)
positive_int = int_at_least(1)


def max_jobs() -> int:
    """The most worker processes a command starts: four per CPU (each holds numpy and scipy)."""
    import os

    return 4 * max(1, os.cpu_count() or 1)


def jobs_count(text: str) -> int:
    """An argparse ``type`` for --jobs: a positive integer up to :func:`max_jobs`."""
    val = positive_int(text)
    if val > max_jobs():
        raise argparse.ArgumentTypeError(
            f"expected at most {max_jobs()} worker processes (4 per CPU), got {val}")
    return val


jobs_count.__name__ = "jobs"


def same_command(args: argparse.Namespace) -> str:
    """The command line that started this command (for "resume with: ..." messages)."""
    import shlex

    return shlex.join(["linrank", *getattr(args, "_argv", [args.command])])


def resume_note(args: argparse.Namespace, kept: str) -> str:
    """What an interrupted long command tells: where finished work is and the exact command
    that resumes it (or that nothing was kept with --no-cache)."""
    if getattr(args, "no_cache", False):
        return "nothing was kept (--no-cache); run it again without --no-cache to keep " \
               "finished runs"
    return f"finished runs are kept in {kept}; resume with: {same_command(args)}"

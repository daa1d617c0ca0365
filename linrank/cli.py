"""The ``linrank`` command-line tool.

Each subcommand lives in ``linrank/commands/<name>.py`` and defines ``add_arguments(parser)``,
``run(args) -> int`` and a one-line ``HELP``. Register it in ``_COMMANDS`` below.

Errors a user can cause (bad values, unusable output paths, sizes that do not fit in memory)
end with one line ``linrank COMMAND: error: ...`` on stderr and exit status 2, never a
traceback; Ctrl-C ends with exit status 130 and, for the long commands, where the finished
work is and the exact command that resumes it (a command module's ``interrupted_note(args)``).
Output paths follow one rule: the parent of --out (or --output) must exist; linrank creates
the directory or file itself, never its parents.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._version import __version__

_COMMANDS = ["check", "saddles", "reproduce", "compare", "sweep", "search"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="linrank",
        description="Geometry and training dynamics of deep linear networks (Bah et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        mod = importlib.import_module(f"linrank.commands.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}:{where}".rstrip(":")
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc})" if str(exc) else "out of memory"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        mod = importlib.import_module(f"linrank.commands.{args.command}")
        note = getattr(mod, "interrupted_note", None)
        text = note(args) if note is not None else ""
        print(f"linrank {args.command}: interrupted" + (f"; {text}" if text else ""),
              file=sys.stderr)
        return 130
    except (ValueError, OSError, MemoryError, argparse.ArgumentTypeError) as exc:
        print(f"linrank {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

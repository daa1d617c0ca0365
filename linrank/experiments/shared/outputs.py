"""Output files that are never half-written, never someone else's, never written by two runs.

* :func:`atomic_write_text` / :func:`atomic_replace` -- write a temporary file in the target's
  directory, then ``os.replace`` it: a reader sees the old file or the new one, never a part.
* :class:`OutputDir` -- an output directory owned by linrank: a lock (``fcntl.flock`` on
  ``DIR/.linrank-lock``, released by the kernel if the process dies) so two commands cannot
  write into it at once, and a manifest (``DIR/.linrank-manifest.json``: name -> sha256 of what
  linrank wrote) so a file is replaced only if linrank wrote it and nobody changed it since.
  A directory that exists, is not empty and has no manifest is refused (``overwrite=True``
  takes it over).

Errors are :class:`OutputError` (a ValueError) with a one-line message naming the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable

__all__ = ["OutputError", "atomic_write_text", "atomic_replace", "check_new_file", "OutputDir",
           "check_out_parent"]

LOCK = ".linrank-lock"
MANIFEST = ".linrank-manifest.json"
CACHE = ".runs"


class OutputError(ValueError):
    """An output path that cannot or must not be written."""


def atomic_replace(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` for a fresh temporary file next to ``path``, then rename it."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a normal new file follows the umask
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    atomic_replace(path, write)


def check_new_file(path: str, overwrite: bool = False) -> str:
    """Check before any work that ``path`` can be created: parent exists and is writable.

    Refuses an existing file unless ``overwrite`` and a directory always. Returns the absolute
    path. Raises :class:`OutputError`.
    """
    full = os.path.abspath(path)
    parent = os.path.dirname(full)
    if os.path.isdir(full):
        raise OutputError(f"{path} is a directory, expected a file name")
    if os.path.exists(full) and not overwrite:
        raise OutputError(f"{path} exists and linrank did not create it in this run; choose "
                          "another name or pass --overwrite")
    check_out_parent(path, "--output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"directory {parent} is not writable")
    return full


def check_out_parent(path: str, option: str = "--out") -> str:
    """The one rule for output paths of every command: the parent directory must exist.

    linrank creates the output directory (or file) itself, never its parents, so a misspelt
    path does not silently create a tree somewhere. Returns the absolute path; raises
    :class:`OutputError` naming the option and the missing parent.
    """
    full = os.path.abspath(path)
    parent = os.path.dirname(full)
    if not os.path.isdir(parent):
        raise OutputError(f"the parent directory {parent} of {option} {path} does not exist "
                          "(linrank creates the output directory, not its parents)")
    return full


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OutputDir:
    """An output directory owned and locked by this process (a context manager).

    ``with OutputDir(path) as out: out.write_text("report.md", text)``. On entry: the parent must
    exist; the directory is created if missing; an existing non-empty directory without a
    manifest is refused unless ``overwrite``; the lock is taken (refused if another process
    holds it). ``write_text`` / ``write_with`` replace a file only if the manifest says linrank
    wrote its current content (or it does not exist, or ``overwrite``).
    """

    def __init__(self, path: str, overwrite: bool = False):
        self.path = os.path.abspath(path)
        self.shown = path
        self.overwrite = overwrite
        self._lock_fd: int | None = None
        self.manifest: dict[str, str] = {}

    # -------------------------------------------------------------- entry and exit
    def __enter__(self) -> OutputDir:
        p, shown = self.path, self.shown
        if os.path.exists(p) and not os.path.isdir(p):
            raise OutputError(f"--out {shown} is an existing file, expected a directory")
        parent = os.path.dirname(check_out_parent(shown))
        if not os.path.exists(p):
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"cannot create {shown}: {parent} is not writable")
            try:
                os.mkdir(p)
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot create {shown}: {exc.strerror}") from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"{shown} is not writable")
        self._lock()
        try:
            self._read_manifest()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._unlock()

    def _lock(self) -> None:
        import fcntl

        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"{self.shown} is in use by another linrank command (lock "
                              f"{os.path.join(self.shown, LOCK)}); wait for it or use another "
                              "directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _read_manifest(self) -> None:
        mpath = os.path.join(self.path, MANIFEST)
        others = [n for n in os.listdir(self.path) if n not in (LOCK, MANIFEST, CACHE)]
        if os.path.exists(mpath):
            try:
                with open(mpath) as fh:
                    data = json.load(fh)
                self.manifest = {str(k): str(v) for k, v in data["files"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                if not self.overwrite:
                    raise OutputError(f"{os.path.join(self.shown, MANIFEST)} is damaged; pass "
                                      "--overwrite to take the directory over") from None
                self.manifest = {}
        elif others and not self.overwrite:
            raise OutputError(f"{self.shown} is not empty and was not written by linrank "
                              f"(it holds {others[0]!r}); choose another --out or pass "
                              "--overwrite")

    # -------------------------------------------------------------- writing
    def target(self, name: str) -> str:
        """The path of ``name`` after checking that linrank may replace it."""
        path = os.path.join(self.path, name)
        if os.path.exists(path) and not self.overwrite:
            known = self.manifest.get(name)
            if known is None:
                raise OutputError(f"{os.path.join(self.shown, name)} exists and was not "
                                  "written by linrank; move it away or pass --overwrite")
            if _sha256(path) != known:
                raise OutputError(f"{os.path.join(self.shown, name)} was changed after linrank "
                                  "wrote it; move it away or pass --overwrite")
        return path

    def write_with(self, name: str, write: Callable[[str], None]) -> str:
        """Write ``name`` atomically by ``write(tmp_path)`` and record it in the manifest."""
        path = self.target(name)
        atomic_replace(path, write)
        self.manifest[name] = _sha256(path)
        self._write_manifest()
        return path

    def write_text(self, name: str, text: str) -> str:
        """Write the text file ``name`` atomically and record it in the manifest."""
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
        return self.write_with(name, write)

    def _write_manifest(self) -> None:
        atomic_write_text(os.path.join(self.path, MANIFEST),
                          json.dumps({"writer": "linrank", "files": self.manifest}, indent=1))

    def check_all(self, names: list[str]) -> None:
        """Check every name before the work starts (refuse early, not after minutes of runs)."""
        for name in names:
            self.target(name)

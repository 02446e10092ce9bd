"""Exception hierarchy, named for conditions.  Every message carries the path."""
from __future__ import annotations


class MemsnapError(Exception):
    """Base class.  ``hint`` says how to fix it; the CLI prints ``Error: <msg> — <hint>``."""

    hint = ""

    def __init__(self, message: str, hint: str | None = None, path: str | None = None):
        super().__init__(message)
        self.path = path
        if hint is not None:
            self.hint = hint


class ParseError(MemsnapError, ValueError):
    """A /proc file (or a captured copy of one) did not have the expected format."""

    def __init__(self, path: str, line_no: int | None, message: str, line: str | None = None):
        where = f"{path}:{line_no}" if line_no is not None else path
        text = f"{where}: {message}"
        if line is not None:
            text += f": {line[:120]!r}"
        super().__init__(text, hint="the file is not in the format this kernel interface documents", path=path)
        self.line_no = line_no


class ProcessGone(MemsnapError):
    """The process exited (or became a zombie) while it was being read."""


class AccessDenied(MemsnapError):
    """The kernel refused access (EACCES/EPERM), e.g. ptrace checks on /proc/1/pagemap."""


class StoreError(MemsnapError):
    """A store cannot be used as asked."""


class StoreCorrupt(StoreError):
    """A store file is unreadable, truncated or not a memsnap file."""


class SchemaMismatch(StoreError):
    """A store file was written with a schema this version does not understand."""


class SnapshotNotFound(StoreError):
    """No committed snapshot matches the id asked for."""


class NothingRecorded(MemsnapError):
    """A capture selected no process it could read: nothing is committed (an empty snapshot would pass for
    an idle machine)."""


class Interrupted(MemsnapError):
    """SIGINT/SIGTERM arrived during a capture; the current snapshot was discarded."""

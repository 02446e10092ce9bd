"""Settings read from the environment, and the size syntax options share: one place for each."""
from __future__ import annotations

import os

from .errors import MemsnapError

DEFAULT_STORE = "./memsnap-store"
#: the analyzer's DuckDB memory limit unless MEMSNAP_MEMORY_LIMIT says otherwise
DEFAULT_MEMORY_LIMIT = "1GB"

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default_store() -> str:
    """``$MEMSNAP_STORE``, else ``./memsnap-store``."""
    return os.environ.get("MEMSNAP_STORE") or DEFAULT_STORE


def memory_limit() -> str:
    return os.environ.get("MEMSNAP_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def parse_size(text: str, option: str = "size") -> int:
    """Bytes from ``2000000000``, ``500M``, ``2G``, ``1.5GiB`` (binary units)."""
    t = str(text).strip().upper().rstrip("B").rstrip("I")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in "KMGT" else (t, "")
    try:
        n = int(float(num) * _UNITS[unit])
    except ValueError:
        raise MemsnapError(f"{option} {text!r} is not a size", hint="e.g. 2000000000, 500M or 2G") from None
    if n < 0:
        raise MemsnapError(f"{option} {text!r} is negative", hint="give a size such as 500M or 2G")
    return n

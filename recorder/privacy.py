"""Keeping secrets out of stores: PFN pseudonyms and redaction of command lines and user paths.

The key never goes into the store.  It comes from ``$MEMSNAP_KEY`` (any string), or from a key file
(``$MEMSNAP_KEY_FILE``, default ``/var/lib/memsnap/key``), created with 32 random bytes (0600) on first
use.  The same key gives the same pseudonyms in every snapshot of a host, so sharing, diffs and
attribution still work; without it the physical addresses cannot be recovered.
"""
from __future__ import annotations

import hashlib
import os

import pyarrow as pa
from pyarrow._compute import call_function as _call  # not pyarrow.compute: see recorder.capture._Compute

from common.errors import MemsnapError

DEFAULT_KEY_FILE = "/var/lib/memsnap/key"
PFN_BITS = 55
PFN_MASK = (1 << PFN_BITS) - 1
REDACT_CHOICES = ("cmdline", "paths")
_U64 = pa.uint64()
_PFN_MASK = pa.scalar(PFN_MASK, _U64)
_NOT_PFN_MASK = pa.scalar(((1 << 64) - 1) ^ PFN_MASK, _U64)
_PRESENT = pa.scalar(1 << 63, _U64)
_ZERO = pa.scalar(0, _U64)
#: mapping paths under these prefixes are system files, kept as they are by --redact paths
SYSTEM_PREFIXES = ("/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/bin/", "/sbin/", "/etc/", "/opt/",
                   "/snap/", "/nix/store/", "/gnu/store/", "/proc/", "/sys/", "/dev/zero", "/var/lib/flatpak/")


class KeyUnavailable(MemsnapError):
    hint = "set MEMSNAP_KEY, or MEMSNAP_KEY_FILE to a file the recorder can read (it is created if missing)"


def load_key(path: str | None = None) -> bytes:
    env = os.environ.get("MEMSNAP_KEY")
    if env:
        return hashlib.sha256(env.encode()).digest()
    path = path or os.environ.get("MEMSNAP_KEY_FILE") or DEFAULT_KEY_FILE
    try:
        with open(path, "rb") as f:
            key = f.read()
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            key = os.urandom(32)
            os.write(fd, key)
            os.fsync(fd)
            os.close(fd)
        except FileExistsError:
            with open(path, "rb") as f:
                key = f.read()
        except OSError as e:
            raise KeyUnavailable(f"cannot create the key file {path}: {e.strerror}", path=path) from None
    except OSError as e:
        raise KeyUnavailable(f"cannot read the key file {path}: {e.strerror}", path=path) from None
    if len(key) < 16:
        raise KeyUnavailable(f"key file {path} holds only {len(key)} bytes; 16 or more are needed", path=path)
    return key


CACHE_PFNS = 1 << 16  # pseudonyms kept for PFNs seen again (about 100 B each)


class Pseudonymizer:
    """Keyed PFN pseudonyms (BLAKE2b, 55 bits, never 0).  Equal PFNs give equal pseudonyms."""

    def __init__(self, key: bytes):
        self.key = hashlib.sha256(b"memsnap-pfn\0" + key).digest()
        self._cache: dict[int, int] = {}

    def _one(self, pfn: int) -> int:
        v = self._cache.get(pfn)
        if v is None:
            h = hashlib.blake2b(pfn.to_bytes(8, "little"), key=self.key, digest_size=8).digest()
            v = int.from_bytes(h, "little") & PFN_MASK or 1
            if len(self._cache) >= CACHE_PFNS:  # bounded recorder memory: start over
                self._cache.clear()
            self._cache[pfn] = v
        return v

    def pfns(self, pfns):
        """Pseudonyms of an array of PFNs (through the distinct values).  Arrow in, Arrow out; an array of
        another kind (numpy) is converted, and answered as numpy."""
        arr, back = _arrow_u64(pfns)
        enc = _call("dictionary_encode", [arr])  # distinct values (dictionary) and where each row is (indices)
        mapped = pa.array([self._one(p) for p in enc.dictionary.to_pylist()], _U64)
        return back(_call("take", [mapped, enc.indices]))

    def entries(self, entries):
        """Replace the PFN field of present pagemap entries; swap entries and flags stay.  Arrow in, Arrow
        out (numpy answered as numpy, as in :meth:`pfns`)."""
        arr, back = _arrow_u64(entries)
        pfn = _call("bit_wise_and", [arr, _PFN_MASK])
        # present, with a PFN other than 0 (a zero PFN stays 0: it is no frame)
        sel = _call("and", [_call("greater_equal", [arr, _PRESENT]), _call("not_equal", [pfn, _ZERO])])
        real = _call("filter", [pfn, sel])
        if not len(real):
            return back(arr)
        pseudo = self.pfns(real)
        flags = _call("bit_wise_and", [_call("filter", [arr, sel]), _NOT_PFN_MASK])
        return back(_call("replace_with_mask", [arr, sel, _call("bit_wise_or", [flags, pseudo])]))


def _arrow_u64(values):
    """``values`` as an Arrow uint64 array, and how to give a result back in the caller's kind."""
    if isinstance(values, pa.Array):
        return values, lambda a: a
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks(), lambda a: a
    return pa.array(values, _U64), lambda a: a.to_numpy(zero_copy_only=False)


def _tag(key: bytes, text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), key=hashlib.sha256(b"memsnap-redact\0" + key)
                           .digest(), digest_size=8).hexdigest()


def redact_cmdline(key: bytes, cmdline: str | None) -> str | None:
    """A keyed hash: equal command lines stay equal (for grouping and diffs), the text is gone."""
    return None if cmdline is None else f"<redacted:{_tag(key, cmdline)}>"


def redact_path(key: bytes, path: str | None) -> str | None:
    """System files and pseudo paths ([heap], [stack]...) stay; anything else becomes a keyed hash."""
    if path is None or path.startswith("[") or path.startswith(SYSTEM_PREFIXES):
        return path
    suffix = " (deleted)" if path.endswith(" (deleted)") else ""
    return f"<redacted:{_tag(key, path)}>{suffix}"

"""Keeping secrets out of stores: PFN pseudonyms and redaction of command lines and user paths.

The key never goes into the store.  It comes from ``$MEMSNAP_KEY`` (any string), or from a key file
(``$MEMSNAP_KEY_FILE``, default ``/var/lib/memsnap/key``), created with 32 random bytes (0600) on first
use.  The same key gives the same pseudonyms in every snapshot of a host, so sharing, diffs and
attribution still work; without it the physical addresses cannot be recovered.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from common.errors import MemsnapError

DEFAULT_KEY_FILE = "/var/lib/memsnap/key"
PFN_BITS = 55
PFN_MASK = (1 << PFN_BITS) - 1
REDACT_CHOICES = ("cmdline", "paths")
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
            self._cache[pfn] = v
        return v

    def pfns(self, pfns: np.ndarray) -> np.ndarray:
        """Pseudonyms of an array of PFNs (vectorised through the distinct values)."""
        if pfns.size == 0:
            return pfns.astype(np.uint64)
        uniq, inv = np.unique(pfns, return_inverse=True)
        mapped = np.fromiter((self._one(int(p)) for p in uniq.tolist()), dtype=np.uint64, count=uniq.size)
        return mapped[inv]

    def entries(self, entries: np.ndarray) -> np.ndarray:
        """Replace the PFN field of present pagemap entries; swap entries and flags stay."""
        out = entries.copy()
        present = (entries >> np.uint64(63)) == 1
        pfn = entries[present] & np.uint64(PFN_MASK)
        nz = pfn != 0
        pseudo = pfn.copy()
        pseudo[nz] = self.pfns(pfn[nz])
        out[present] = (entries[present] & ~np.uint64(PFN_MASK)) | pseudo
        return out


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

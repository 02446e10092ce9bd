"""Stores on an S3 object store: ``s3://bucket/prefix`` (``s3a://``, Hadoop's spelling, names the same store).

One place for what both sides need: the S3 filesystem (pyarrow's, which the recorder's lean install has),
configured from the standard AWS environment, and the listing and existence checks :mod:`common.catalog`
makes on a directory store.  The layout is the same as on disk (:mod:`common.layout`: ``os.path.join`` writes
``/``), so a store URL and its files' URLs are strings the catalog handles as it handles paths.

An object store has no directories: a "directory" is every key that starts with its path and a ``/``.
:func:`glob` lists the keys under the longest fixed part of a pattern once, then matches the pattern one
component at a time (a ``*`` never crosses a ``/``, and does not match a name starting with ``.``, as
:func:`glob.glob`).
"""
from __future__ import annotations

import fnmatch
import os
from functools import lru_cache

from .errors import MemsnapError

SCHEMES = ("s3://", "s3a://")


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(SCHEMES)


def normalize(url: str) -> str:
    """``s3a://b/p/`` -> ``s3://b/p``: the one spelling the catalog and DuckDB use (Spark is given s3a)."""
    rest = url.split("://", 1)[1].rstrip("/")
    if not rest.split("/", 1)[0]:
        raise MemsnapError(f"{url!r}: no bucket", hint="write s3://bucket or s3://bucket/prefix")
    return "s3://" + rest


def key(url: str) -> str:
    """The pyarrow path of a URL: ``bucket/prefix/...``."""
    return url.split("://", 1)[1].strip("/")


def to_s3a(url: str) -> str:
    """The URL as Hadoop's S3A filesystem (Spark) names it."""
    return "s3a://" + key(url)


def endpoint(endpoint_url: str | None = None) -> tuple[str, str] | None:
    """(scheme, host:port) of the S3 endpoint: ``endpoint_url``, else ``$AWS_ENDPOINT_URL_S3`` or
    ``$AWS_ENDPOINT_URL`` (the AWS SDKs' own variables); None for AWS itself."""
    from urllib.parse import urlparse

    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    e = urlparse(url if "://" in url else "https://" + url)
    if e.scheme not in ("http", "https") or not e.netloc:
        raise MemsnapError(f"endpoint {url!r} (--endpoint-url or $AWS_ENDPOINT_URL) is not an http(s) URL",
                           hint="e.g. --endpoint-url http://127.0.0.1:9000")
    return e.scheme, e.netloc


def error(e: Exception, what: str) -> MemsnapError:
    """pyarrow's S3 errors (OSError with the AWS error name in the text) as one line with a hint."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    hints = [("NO_SUCH_BUCKET", "create the bucket first, or check its name"),
             ("NETWORK_CONNECTION", "check the endpoint (--endpoint-url or $AWS_ENDPOINT_URL) and the network"),
             ("Could not connect", "check the endpoint (--endpoint-url or $AWS_ENDPOINT_URL) and the network"),
             ("ACCESS_DENIED", "check the credentials ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY) and the "
                               "bucket's policy"),
             ("INVALID_ACCESS_KEY_ID", "check $AWS_ACCESS_KEY_ID"),
             ("SIGNATURE_DOES_NOT_MATCH", "check $AWS_SECRET_ACCESS_KEY"),
             ("Forbidden", "check the credentials and the bucket's policy")]
    hint = next((h for k, h in hints if k.lower() in msg.lower()), "check the URL, the endpoint and the credentials")
    return MemsnapError(f"{what}: {msg}", hint=hint)


@lru_cache(maxsize=4)
def filesystem(endpoint_url: str | None = None, _env: tuple = ()):
    """``pyarrow.fs.S3FileSystem``: credentials and region from the AWS variables and files (as the SDK reads
    them), the endpoint from :func:`endpoint` (pyarrow does not read it from the environment)."""
    import pyarrow.fs as pfs

    kw: dict = {"connect_timeout": 10, "request_timeout": 120}
    e = endpoint(endpoint_url)
    if e:
        kw.update(scheme=e[0], endpoint_override=e[1])
    try:
        return pfs.S3FileSystem(**kw)
    except Exception as ex:
        raise error(ex, "S3") from None


def fs(endpoint_url: str | None = None):
    """:func:`filesystem` for the current environment (a changed ``AWS_*`` variable gives a new one)."""
    return filesystem(endpoint_url, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))


def _listing(base: str) -> set[str]:
    """Every key under ``base`` (a pyarrow path), and every "directory" those keys imply."""
    import pyarrow.fs as pfs

    try:
        infos = fs().get_file_info(pfs.FileSelector(base, recursive=True, allow_not_found=True))
    except Exception as e:
        raise error(e, "s3://" + base) from None
    out: set[str] = set()
    for i in infos:
        parts = i.path.split("/")
        for n in range(len(base.split("/")) + 1, len(parts) + 1):
            out.add("/".join(parts[:n]))
    return out


def _match(name: str, pat: str) -> bool:
    return fnmatch.fnmatchcase(name, pat) and not (name.startswith(".") and not pat.startswith("."))


def glob(pattern: str) -> list[str]:
    """The URLs matching a glob pattern (``*``, ``?``, ``[...]`` within one path component)."""
    parts = key(pattern).split("/")
    fixed = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))
    if fixed == len(parts):
        return [pattern] if exists(pattern) else []
    base = "/".join(parts[:fixed])
    found = _listing(base)
    n = len(parts)
    return sorted("s3://" + k for k in found
                  if len(k.split("/")) == n and all(_match(a, b) for a, b in zip(k.split("/")[fixed:], parts[fixed:])))


def exists(url: str) -> bool:
    """Whether a file (an object), or a "directory" (any key under it), exists."""
    import pyarrow.fs as pfs

    try:
        return fs().get_file_info(key(url)).type != pfs.FileType.NotFound
    except Exception as e:
        raise error(e, url) from None


def read_table(url: str, columns=None):
    import pyarrow.parquet as pq

    return pq.read_table(key(url), filesystem=fs(), columns=columns)


def read_schema(url: str):
    import pyarrow.parquet as pq

    return pq.read_schema(key(url), filesystem=fs())


def fsspec_filesystem():
    """The same filesystem for DuckDB (``con.register_filesystem``), through fsspec's wrapper of a pyarrow
    filesystem: DuckDB then reads ``s3://`` files with this process's S3 settings, without its httpfs
    extension (which it would download).  The analyzer only (fsspec is in the ``analyze`` extra)."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class _S3(ArrowFSWrapper):
        protocol = ("s3",)  # the prefix DuckDB routes to this filesystem

    return _S3(fs())

"""``memsnap push``: copy a store's committed snapshots to a central store (recorder install)."""
from __future__ import annotations

import json
from enum import Enum
from typing import List, Optional

import typer

from common.errors import MemsnapError

from .app import app
from .options import LazyProgress, OneStoreOpt, err, fail, one_store, store_paths


class PushFmt(str, Enum):
    table = "table"
    json = "json"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@app.command(epilog="Examples:\n\n  memsnap push central-store          # ./memsnap-store to ./central-store\n\n"
                    "  memsnap push memsnap-store central-store --dry-run\n\n"
                    "  memsnap push -S memsnap-store central-store --move --format json")
def push(
    args: List[str] = typer.Argument(..., metavar="[STORE] DEST", show_default=False,
                                     help="The store to push (default: -S, else $MEMSNAP_STORE, else "
                                          "./memsnap-store), then the destination: a directory (created if "
                                          "missing) or s3://bucket/prefix."),
    store: OneStoreOpt = [],
    host: Optional[str] = typer.Option(None, "--host", help="Only this host's snapshots."),
    move: bool = typer.Option(False, "--move", help="Delete each pushed snapshot from the source once its commit "
                                                  "at the destination is durable (snapshots already there too). "
                                                  "Snapshots being written are never touched."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be pushed; change nothing."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", metavar="URL",
                                               help="S3 endpoint, e.g. http://127.0.0.1:9000 (MinIO, Ceph, moto). "
                                                    "Default: $AWS_ENDPOINT_URL, else AWS."),
    fmt: PushFmt = typer.Option(PushFmt.table, "--format", "-f", help="table (one sentence) or json (what was "
                                                                      "pushed, skipped and moved)."),
):
    """Copy committed snapshots to a central store: a directory or s3://bucket/prefix.

    Only committed snapshots are copied, file by file as the recorder wrote them (a compacted day whole), each
    snapshot's commit row last: the destination shows a snapshot only once all its files are there. Snapshots
    already at the destination are skipped, so it is safe to rerun, and a push that was killed resumes.
    Pushes from many hosts into one destination make one multi-host store that every command reads.

    S3 (AWS or any S3-compatible store) uses the standard AWS variables: AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (or --endpoint-url), e.g.
    `memsnap push /var/lib/memsnap s3://metrics/memsnap --move`.
    """
    from recorder.push import push as run

    if len(args) > 2:
        fail(MemsnapError(f"push takes [STORE] DEST, {len(args)} arguments were given ({' '.join(args)})",
                          hint="e.g. memsnap push memsnap-store s3://bucket/prefix"))
    if len(args) == 2 and store:
        fail(MemsnapError("give the store once, as the first argument or with -S", hint="memsnap push -S STORE DEST"))
    src = one_store("push", args[0], []) if len(args) == 2 else (one_store("push", None, store) if store else
                                                                 store_paths([], [])[0])
    dest = args[-1]
    try:
        with LazyProgress("push: segments ", min_total=2) as progress:
            res = run(src, dest, host=host, move=move, dry_run=dry_run, endpoint_url=endpoint_url,
                      progress=progress)
    except MemsnapError as e:
        fail(e)
    if res.recovered:
        err(f"removed {len(res.recovered)} incomplete segment(s) left at the destination by a killed push")
    if res.vanished:
        err(f"{len(res.vanished)} segment(s) were removed from the source while pushing (compacted or deleted "
            "by retention): the next push takes their snapshots")
    if res.busy:
        err(f"{len(res.busy)} segment(s) skipped: another process holds them (a push or a deletion); run again")
    if fmt == PushFmt.json:
        typer.echo(json.dumps(res.as_dict(), indent=1))
    else:
        _summary(res, src, dry_run)
    if res.conflicts:
        fail(MemsnapError(f"{len(res.conflicts)} file set(s) not pushed ({', '.join(res.conflicts[:3])}"
                          f"{', ...' if len(res.conflicts) > 3 else ''}): a compacted file at the destination holds "
                          "some of their snapshots and others", hint="push them to another destination, or remove "
                          "the overlapping compacted files at the destination and push again"))


def _summary(res, src: str, dry_run: bool) -> None:
    verb = "would push" if dry_run else "pushed"
    line = (f"{verb} {res.snapshots} snapshot{'s' if res.snapshots != 1 else ''} "
            f"({len(res.pushed)} file set{'s' if len(res.pushed) != 1 else ''}, {_mb(res.bytes)}) to {res.dest}")
    if res.present:
        line += f"; {res.present} file set{'s' if res.present != 1 else ''} already there"
    typer.echo(line)
    if res.moved:
        typer.echo(f"removed {len(res.moved)} pushed file set{'s' if len(res.moved) != 1 else ''} from {src}")
    if res.pruned:
        typer.echo(f"removed {len(res.pruned)} superseded file set(s) at the destination (their snapshots are in "
                   "a compacted file pushed since)")

"""Command names for interpreters and launchers (queries/process_commands.sql; docs/smem.md, "Command names"):
one fake process per rule of the registry, and a live Python prefork server grouped by its module name."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

from analyzer import queries
from conftest import ROOT, memsnap, needs_root, record_pids

PYTHON = "/usr/bin/python3.13"
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
# (exe, cmdline as recorded: arguments joined by spaces, comm, the expected command name)
CASES = [
    (PYTHON, "python3 -m gunicorn -w 2 app:app", "python3", "gunicorn"),
    (PYTHON, "python3 app.py --port 80", "python3", "app.py"),
    (PYTHON, "/usr/bin/python3 -u -W ignore /srv/x/app.py", "python3", "app.py"),
    (PYTHON, "python3 -X dev -m pkg.mod", "python3", "pkg.mod"),
    (PYTHON, "python3 -c import time; time.sleep(9)", "python3", "python3"),  # inline code: the interpreter
    (PYTHON, "python3", "python3", "python3"),
    (PYTHON + " (deleted)", "python3 -m celery worker", "python3", "celery"),  # interpreter upgraded meanwhile
    (None, "python3 -m gunicorn x", "python3", "gunicorn"),  # exe unreadable: argv[0]
    (JAVA, "java -Xmx1g -Dx=y -jar /opt/app/x.jar --server.port=8080", "java", "x.jar"),
    (JAVA, "java -cp a.jar:b.jar -Xmx1g org.example.Main arg", "java", "org.example.Main"),
    ("/usr/bin/node", "node --max-old-space-size=512 /srv/server.js", "node", "server.js"),
    ("/usr/bin/node", "node -r dotenv/config server.js", "node", "server.js"),
    ("/usr/bin/node", "node -e console.log(1)", "node", "node"),
    ("/usr/bin/perl", "perl -w /usr/local/bin/x.pl", "perl", "x.pl"),
    ("/usr/bin/perl", "perl -e print 1", "perl", "perl"),
    ("/usr/bin/ruby3.1", "ruby -I lib app.rb", "ruby", "app.rb"),
    ("/usr/bin/ruby3.1", "ruby -e puts", "ruby", "ruby"),
    ("/usr/bin/php8.2", "php -d memory_limit=1G artisan queue:work", "php", "artisan"),
    ("/usr/bin/php8.2", "php -r echo 1;", "php", "php"),
    ("/usr/bin/bash", "/bin/bash /opt/run.sh arg", "bash", "run.sh"),
    ("/usr/bin/bash", "bash -e -x run.sh", "bash", "run.sh"),
    ("/usr/bin/dash", "sh -c sleep 100", "sh", "sh"),  # sh -c: inline code, the shell's name
    ("/usr/bin/bash", "-bash", "bash", "bash"),  # a login shell
    ("/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx", "nginx", "nginx"),  # plain programs keep comm
    ("/usr/lib/postgresql/17/bin/postgres", "postgres: checkpointer", "postgres", "postgres"),
    (PYTHON, "gunicorn: worker [app:app]", "gunicorn", "gunicorn"),  # setproctitle: comm
    (None, None, "kworker/0:1", "kworker/0:1"),
]


def test_command_names_of_every_rule():
    con = duckdb.connect()
    con.execute("CREATE TABLE processes (host VARCHAR, snapshot_id VARCHAR, pid INTEGER, comm VARCHAR, "
                "cmdline VARCHAR, exe VARCHAR)")
    for pid, (exe, cmdline, comm, _) in enumerate(CASES):
        con.execute("INSERT INTO processes VALUES ('h', 's', ?, ?, ?, ?)", [pid, comm, cmdline, exe])
    got = dict(con.execute(f"SELECT pid, command FROM ({queries.get('process_commands').sql})").fetchall())
    assert {CASES[pid][1]: name for pid, name in got.items()} == {c[1]: c[3] for c in CASES}


@needs_root
def test_prefork_server_grouped_by_module(tmp_path):
    """A `python -m prefork_stub` master and its forked workers make one group named by the module, apart from
    another Python process (the memsnap workload, `python3 .../workload.py`); the group's figures are the
    sums of its processes' own (--source smaps: per-process figures from smaps_rollup, summed)."""
    server = subprocess.Popen([sys.executable, "-m", "prefork_stub", "--workers", "2"], cwd=ROOT / "tests",
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    try:
        info = json.loads(server.stdout.readline())
        pids = [info["master"], *info["workers"]]
        record_pids(tmp_path, [*pids, other.pid])
        cols = "command count swap uss pss rss vss"
        groups = {r["command"]: r for r in json.loads(memsnap("sizes", str(tmp_path), "--by", "command", "-c", cols,
                                                              "-f", "json").stdout)}
        procs = json.loads(memsnap("sizes", str(tmp_path), "-c", "pid name exe program swap uss pss rss vss",
                                   "-f", "json").stdout)
    finally:
        server.communicate("quit\n", timeout=30)
        other.communicate(b"\n", timeout=30)
    assert set(groups) == {"prefork_stub", "python3"} or set(groups) == {"prefork_stub", procs[0]["name"]}
    g = groups["prefork_stub"]
    assert g["count"] == 3
    members = [p for p in procs if p["pid"] in pids]
    assert {p["program"] for p in members} == {"prefork_stub"} and all(p["exe"] for p in members)
    for col in ("swap", "uss", "pss", "rss", "vss"):
        assert g[col] == sum(p[col] for p in members), col
    assert groups[next(n for n in groups if n != "prefork_stub")]["count"] == 1

"""Issue 17, "First contact": what a new user trips over, and what must never be misleading.

Each test names the item of the issue it covers."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_STORE, memsnap

STORE = str(SAMPLE_STORE)


def one_error_line(cp) -> str:
    """The CLI's error: exit 1, one line `Error: <what> — <how to fix>`, no traceback."""
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in cp.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " — " in lines[0], cp.stderr
    return lines[0]


# ---------------------------------------------------------------- item 3: named-query parameters are checked
@pytest.mark.parametrize("args, words", [
    (["--param", "by=usr"], ["by='usr'", "not one of", "user, command, cgroup, regex"]),
    (["--param", "by=regex", "--param", "pattern=("], ["pattern", "not a valid regular expression"]),
    (["--param", "pfilter=[x"], ["pfilter", "not a valid regular expression"]),
])
def test_query_param_checked_against_header(args, words):
    line = one_error_line(memsnap("query", STORE, "shared_groups", *args, check=False))
    for w in words:
        assert w in line, line


def test_query_number_param_checked():
    line = one_error_line(memsnap("query", STORE, "page_transitions", "--param", "parts=x", check=False))
    assert "parts='x'" in line and "whole number" in line


def test_query_valid_params_still_run():
    out = memsnap("query", STORE, "shared_groups", "--param", "by=user", "-f", "csv").stdout
    assert out.splitlines()[0].startswith("group,") and "root" in out
    out = memsnap("query", STORE, "shared_groups", "--param", "by=regex", "--param", "pattern=workload",
                  "-f", "csv").stdout
    assert "regex:workload,4," in out


# ---------------------------------------------------------------- item 8: memsnap sql
def test_sql_prints_each_statement():
    out = memsnap("sql", STORE, "SELECT 41 AS first_answer; SELECT 42 AS second_answer").stdout
    assert "FIRST_ANSWER" in out and "41" in out and "SECOND_ANSWER" in out and "42" in out
    assert out.index("41") < out.index("42")


def test_sql_one_result_formats_refuse_several():
    line = one_error_line(memsnap("sql", STORE, "-f", "csv", "SELECT 1; SELECT 2", check=False))
    assert "2 statements" in line
    # statements that return no rows (a temporary view) are fine before the one that does
    out = memsnap("sql", STORE, "-f", "csv", "CREATE TEMP VIEW v AS SELECT 3 AS x; SELECT * FROM v").stdout
    assert out.split() == ["x", "3"]


def test_sql_error_keeps_duckdb_hints():
    line = one_error_line(memsnap("sql", STORE, "SELECT pss FROM process_sizes_smaps", check=False))
    assert "Candidate bindings" in line and "pss_kb" in line


def test_sql_reads_only_store_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    for q in (f"SELECT content FROM read_text('{secret}')", f"SELECT * FROM read_csv('{secret}')",
              "SELECT * FROM glob('/etc/*')", f"SELECT content FROM read_text('{STORE}/../../README.md')"):
        cp = memsnap("sql", STORE, q, check=False)
        line = one_error_line(cp)
        assert "hunter2" not in cp.stdout and "--allow-files" in line, line
    # the store's own files, through the views and by path
    out = memsnap("sql", STORE, f"SELECT count(*) AS n FROM read_parquet('{STORE}/processes/*/*/*.parquet')",
                  "-f", "csv").stdout
    assert out.split()[1] != "0"
    out = memsnap("sql", STORE, "--allow-files", f"SELECT content FROM read_text('{secret}')", "-f", "csv").stdout
    assert "hunter2" in out


def test_sql_stdin_locked_too(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    cp = memsnap("sql", STORE, input=f"SELECT content FROM read_text('{secret}');\n", check=False)
    assert cp.returncode == 1 and "hunter2" not in cp.stdout and "--allow-files" in cp.stderr


# ---------------------------------------------------------------- item 2: an smemcap import has no PFNs
@pytest.fixture(scope="module")
def smemcap_store(tmp_path_factory):
    from recorder.smemcap import write_smemcap

    d = tmp_path_factory.mktemp("smemcap")
    assert write_smemcap(str(d / "c.tar.gz"), [os.getpid()]) == 1
    memsnap("import", "smemcap", str(d / "c.tar.gz"), "--store", str(d / "store"))
    return str(d / "store")


@pytest.mark.parametrize("args", [["sizes", "--source", "pages"], ["shared"], ["shared", "--pairs"]])
def test_smemcap_import_says_imported_not_cap_sys_admin(smemcap_store, args):
    line = one_error_line(memsnap(*args, smemcap_store, check=False))
    assert "imported from smemcap" in line and "CAP_SYS_ADMIN" not in line, line
    assert "memsnap record" in line  # what gets PFNs: recording the host, not running the analyzer as root


def test_smemcap_import_report_caveat(smemcap_store, tmp_path):
    memsnap("report", smemcap_store, "-o", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert "imported from smemcap" in html and "CAP_SYS_ADMIN" not in html


# ---------------------------------------------------------------- item 1: permissions are not a missing store
as_nobody_possible = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                        reason="needs root and setpriv to run the CLI as another user")


def memsnap_as_nobody(*args):
    """The CLI run as user and group 65534 (nobody), with no supplementary groups."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                           "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def root_store():
    """A copy of sample_data/store as the recorder leaves it when run as root: directories 0750, files 0600,
    under a directory anyone can traverse (pytest's own tmp_path is 0700)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="memsnap-perm-")
    os.chmod(d, 0o755)
    store = os.path.join(d, "store")
    shutil.copytree(STORE, store)
    for dirpath, dirs, files in os.walk(store):
        os.chmod(dirpath, 0o750)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o600)
    yield store
    shutil.rmtree(d)


def _assert_permission_line(cp, path):
    line = one_error_line(cp)
    assert "permission denied" in line and path in line, line
    assert "root" in line and ("chmod" in line or "chgrp" in line), line
    assert "not a memsnap store" not in line and "no committed snapshots" not in line


@as_nobody_possible
def test_store_unreadable_says_permission_denied(root_store):
    _assert_permission_line(memsnap_as_nobody("sizes", root_store), root_store)


@as_nobody_possible
def test_store_subdirectories_unreadable_say_permission_denied(root_store):
    for d in [root_store] + [os.path.join(root_store, t) for t in os.listdir(root_store)]:
        os.chmod(d, 0o755)  # the top directories readable, the host=/date= ones not
    cp = memsnap_as_nobody("sizes", root_store)
    _assert_permission_line(cp, os.path.join(root_store, "snapshots", "host=sample"))


@as_nobody_possible
def test_store_files_unreadable_say_permission_denied(root_store):
    for dirpath, dirs, files in os.walk(root_store):
        os.chmod(dirpath, 0o755)  # every directory readable, the files 0600
    cp = memsnap_as_nobody("snapshots", root_store)
    line = one_error_line(cp)
    assert "permission denied" in line and ".parquet" in line, line


@as_nobody_possible
def test_store_behind_untraversable_directory(root_store):
    parent = os.path.dirname(root_store)
    os.chmod(parent, 0o700)
    _assert_permission_line(memsnap_as_nobody("sizes", root_store), parent)


@as_nobody_possible
def test_store_readable_by_group_works(root_store):
    for dirpath, dirs, files in os.walk(root_store):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    cp = memsnap_as_nobody("sizes", root_store, "-f", "csv")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("pid,")


# ---------------------------------------------------------------- item 12: regex: is the command line; name:
def test_groups_help_says_regex_matches_command_line():
    out = " ".join(memsnap("shared", "--help").stdout.split())
    assert "regex:^postgres" in out and "psql -d postgres" in out and "name:" in out


def test_groups_name_matches_command_name_not_arguments():
    # sample_data's processes: comm "python", command line ".../python .../sample_data/workload.py ..."
    by_line = memsnap("shared", STORE, "--groups", "regex:workload", "-f", "csv").stdout
    assert "regex:workload,4," in by_line
    by_name = memsnap("shared", STORE, "--groups", "name:workload", "-f", "csv").stdout
    assert "(other),4," in by_name and "name:workload" not in by_name
    by_name = memsnap("shared", STORE, "--groups", "name:^python$", "-f", "csv").stdout
    assert "name:^python$,4," in by_name


# ---------------------------------------------------------------- item 9: exports are private
def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)  # the subprocesses inherit it: without care, files come out 0644
    yield
    os.umask(old)


def test_exports_are_created_0600(tmp_path, open_umask):
    t = tmp_path
    memsnap("export-db", STORE, str(t / "v.duckdb"))
    memsnap("export-db", "--materialize", STORE, str(t / "m.duckdb"))
    memsnap("sql", STORE, "-f", "parquet", "-o", str(t / "q.parquet"), "SELECT * FROM processes")
    memsnap("sql", STORE, "-f", "csv", "-o", str(t / "q.csv"), "SELECT cmdline FROM processes")
    memsnap("query", STORE, "process_sizes_smaps", "-f", "parquet", "-o", str(t / "n.parquet"))
    memsnap("diff", STORE, "--plot", str(t / "d.png"))
    memsnap("shared", STORE, "--pairs", "--plot", str(t / "p.png"))
    memsnap("trend", STORE, "--plot", str(t / "t.svg"))
    (t / "r.html").write_text("old")
    os.chmod(t / "r.html", 0o644)  # an existing file overwritten is made private too
    memsnap("report", STORE, "-o", str(t / "r.html"))
    made = sorted(p.name for p in t.iterdir())
    assert made == ["d.png", "m.duckdb", "n.parquet", "p.png", "q.csv", "q.parquet", "r.html", "t.svg", "v.duckdb"]
    assert {p.name: oct(_mode(p)) for p in t.iterdir()} == {n: oct(0o600) for n in made}


def test_file_mode_option_says_otherwise(tmp_path, open_umask):
    memsnap("report", STORE, "-o", str(tmp_path / "r.html"), "--file-mode", "0640")
    assert _mode(tmp_path / "r.html") == 0o640
    memsnap("export-db", STORE, str(tmp_path / "v.duckdb"), "--file-mode", "644")
    assert _mode(tmp_path / "v.duckdb") == 0o644
    line = one_error_line(memsnap("export-db", STORE, str(tmp_path / "x.duckdb"), "--file-mode", "rw", check=False))
    assert "--file-mode" in line and not (tmp_path / "x.duckdb").exists()


def test_failed_export_leaves_existing_file_alone(tmp_path):
    (tmp_path / "x.duckdb").write_text("mine")
    os.chmod(tmp_path / "x.duckdb", 0o644)
    one_error_line(memsnap("export-db", STORE, str(tmp_path / "x.duckdb"), check=False))
    assert _mode(tmp_path / "x.duckdb") == 0o644 and (tmp_path / "x.duckdb").read_text() == "mine"


# ---------------------------------------------------------------- item 13: the report
@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.html"
    memsnap("report", STORE, "-o", str(out))
    return out.read_text()


def test_report_no_leak_suspects_says_none(sample_report):
    i = sample_report.index("Leak suspects")
    section = sample_report[i:sample_report.index("<h2>", i)]
    assert 'id="t-leaks"' not in section and ">none" in section


def test_report_counts_agree_with_nouns():
    from analyzer.report import _caveats, _n

    assert _n(1, "process", "processes") == "1 process" and _n(2, "process", "processes") == "2 processes"
    text = " ".join(_caveats("S", "h", "k", None, "smaps", True, 1, 1, 1, 1, None, ["1 (systemd): EACCES"]))
    assert "1 processes" not in text and "1 process could not be read" in text
    assert "1 process exited" in text and "1 process partially" in text


def test_report_says_why_processes_were_denied():
    from analyzer.report import _caveats

    text = " ".join(_caveats("S", "h", "k", None, "smaps", True, 9, 2, 0, 0, None,
                             ["1 (systemd): EACCES on pagemap", "77 (sshd): EACCES"]))
    assert "2 processes could not be read" in text and "1 (systemd): EACCES on pagemap" in text
    assert "ptrace" in text and "container" in text and "pid 1" in text


def _svg_text(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # the text as text, to read the tick labels
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "c.svg")
            draw(p)
            return Path(p).read_text()


def test_trend_axis_shows_times():
    import re

    from analyzer import open_store
    from analyzer.plot import trend_chart

    with open_store(STORE) as st:
        ser = st.trend(by="process")
        svg = _svg_text(lambda p: trend_chart(ser, p))
    ticks = re.findall(r">(19:31:4\d[.\d]*)<", svg)
    assert len(ticks) >= 2, re.findall(r"<text[^>]*>([^<]*)<", svg)
    assert "capture time (UTC, 2026-11-25)" in svg


def test_diff_chart_leaves_out_small_changes():
    from analyzer import open_store
    from analyzer.plot import diff_chart
    from analyzer.report import CHART_MIN_CHANGE_KB

    assert CHART_MIN_CHANGE_KB > 0
    with open_store(STORE) as st:
        res = st.diff()
        svg = _svg_text(lambda p: diff_chart(res, p, min_change=1000))
    # sample_data: pid 19037 grew 3134 kB, the others under 400 kB
    assert "19037" in svg and "19036" not in svg and "19038" not in svg and "1000 kB" in svg


# ---------------------------------------------------------------- item 11: times for people
# sample_data: boot_time 2026-11-25 18:02:10 UTC, 100 ticks/s; pid 19036 has starttime 537202 ticks
STARTED_19036 = "2026-11-25T19:31:42.020000+00:00"


def _by_pid(rows):
    return {r["pid"]: r for r in rows}


def test_started_in_process_views_beside_the_ticks():
    import json

    rows = json.loads(memsnap("sizes", STORE, "-c", "pid started starttime", "-f", "json").stdout)
    assert _by_pid(rows)[19036] == {"pid": 19036, "started": STARTED_19036, "starttime": 537202}
    rows = json.loads(memsnap("query", STORE, "process_sizes_smaps", "-f", "json").stdout)
    r = _by_pid(rows)[19036]
    assert r["started"] == STARTED_19036 and r["starttime_ticks"] == 537202


def test_started_in_diff_and_trend():
    import json

    rows = json.loads(memsnap("diff", STORE, "-f", "json").stdout)
    r = _by_pid(rows)[19036]
    assert r["started"] == STARTED_19036 and r["starttime"] == 537202
    assert "STARTED" in memsnap("diff", STORE).stdout  # the table too
    rows = json.loads(memsnap("trend", STORE, "-f", "json").stdout)
    assert {r["started"] for r in rows if r["pid"] == 19036} == {STARTED_19036}

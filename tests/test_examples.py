"""Every example in the README and in every ``--help`` epilog runs as pasted, in bash, against sample_data.

Each runs in a scratch directory holding a copy of sample_data's store as ``./memsnap-store`` (the default
store) and as ``sample_data/store``, with ``memsnap`` on PATH.  An example that records until stopped
(``--count 0``) is stopped with SIGTERM after a few seconds and must exit 0.  Examples that record need root
(pagemap, other users' processes), like the recorder itself.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import typer

from conftest import IS_ROOT, ROOT, SAMPLE_STORE, require_or_skip


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        out += [line for line in block.splitlines() if line.startswith("memsnap ")]
    return out


def help_examples() -> list[str]:
    from cli import app

    root = typer.main.get_command(app)
    cmds = list(root.commands.values())
    cmds += [c for g in cmds if hasattr(g, "commands") for c in g.commands.values()]
    return [line.strip() for c in cmds for line in (c.epilog or "").splitlines() if line.strip().startswith("memsnap ")]


def _command(example: str) -> str:
    """The example without its trailing comment (bash drops it too): README and --help share many."""
    return re.split(r"\s+#\s", example, maxsplit=1)[0].strip()


EXAMPLES = sorted({_command(e) for e in readme_examples() + help_examples()})


def test_there_are_examples_from_both_places():
    assert len(readme_examples()) >= 20 and len(help_examples()) >= 20


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """``memsnap`` on PATH, and an smemcap capture for the import examples."""
    d = tmp_path_factory.mktemp("tools")
    shim = d / "memsnap"
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom cli import main\n"
                    "main()\n")
    shim.chmod(0o755)
    from recorder.smemcap import write_smemcap

    write_smemcap(str(d / "capture.tar.gz"), [os.getpid()])
    return d


@pytest.fixture
def sandbox(tmp_path, tools):
    """A fresh copy per example: what one example records or writes cannot change another's answer."""
    shutil.copytree(SAMPLE_STORE, tmp_path / "memsnap-store")
    shutil.copytree(SAMPLE_STORE, tmp_path / "sample_data" / "store")
    shutil.copytree(SAMPLE_STORE.parent / "physmem", tmp_path / "sample_data" / "physmem")  # memsnap memory's
    shutil.copy(tools / "capture.tar.gz", tmp_path)
    (tmp_path / "bin").mkdir()
    os.symlink(tools / "memsnap", tmp_path / "bin" / "memsnap")
    return tmp_path


def _env(sandbox):
    env = {k: v for k, v in os.environ.items() if k != "MEMSNAP_STORE"}
    env.update(PATH=f"{sandbox / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(sandbox))
    return env


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_as_pasted(sandbox, example):
    if re.match(r"memsnap record\b", example) and not IS_ROOT:
        require_or_skip("recording needs root")
    runs_until_stopped = "--count 0" in example
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", example], cwd=sandbox, env=_env(sandbox),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(".tables\n", timeout=6 if runs_until_stopped else 300)
    except subprocess.TimeoutExpired:
        if not runs_until_stopped:
            raise
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, f"{example}\nexit {p.returncode}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert "Traceback" not in err

"""Fixtures: a store in a temporary directory, the embedded simulator on a free loopback port,
and a `run` helper that invokes the real command line in-process."""

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from resellctl.cli import App, cli
from resellctl.sim import Simulator, serve

USERNAME = "reseller@example.net"
PASSWORD = "s3cret-Pa55word-xyzzy"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Retries without sleeping and short timeouts, so failure paths stay fast."""
    monkeypatch.setenv("RESELLCTL_RETRY_WAIT", "0")
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("RESELLCTL_READ_TIMEOUT", "2")
    monkeypatch.setenv("RESELLCTL_CONNECT_TIMEOUT", "2")


@pytest.fixture(scope="session")
def empty_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "resellctl.conf"
    path.touch()
    return str(path)


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch, empty_config):
    """An empty configuration file in place of /etc/resellctl.conf, which may name a store."""
    monkeypatch.setenv("RESELLCTL_CONFIG", empty_config)


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """The path of a new, empty store (made by `resellctl init`), which RESELLCTL_DB names."""
    path = str(tmp_path / "store" / "resellctl.db")
    result = CliRunner().invoke(cli, ["--db", path, "init"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("RESELLCTL_DB", path)
    return path


@pytest.fixture
def sim():
    """A running simulator: ``sim`` is its state, ``sim.server`` its HTTP server."""
    state = Simulator(username=USERNAME, password=PASSWORD, balance="100.00")
    with serve(state) as server:
        state.server = server
        yield state


@pytest.fixture
def password_file(tmp_path):
    """A file of mode 0600 holding the upstream's password."""
    path = tmp_path / "upstream.pw"
    with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w") as f:
        f.write(PASSWORD + "\n")
    return str(path)


class Result:
    """What a user sees of one command: exit status, stdout, stderr."""

    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def __repr__(self):
        return (f"<exit {self.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}\n"
                f"exception: {self.exception!r}>")


@pytest.fixture
def run(db_path):
    """Invoke ``resellctl ARGS...`` in-process; ``tty=True`` makes stdout look like a terminal,
    ``stdin_tty=True`` stdin (a person at a terminal answers what it asks with ``input``),
    ``stderr_tty=True`` stderr."""
    def invoke(*args, input=None, tty=False, stdin_tty=False, stderr_tty=False):
        runner = CliRunner()
        obj = App(stdout_isatty=tty, stderr_isatty=stderr_tty, stdin_isatty=stdin_tty)
        result = runner.invoke(cli, [str(a) for a in args], input=input, obj=obj)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result)
    invoke.db_path = db_path
    return invoke


@pytest.fixture
def upstream(run, sim, password_file):
    """A store with the billmanager module `vds-up` on the simulator, tariffs imported, and a
    manual module `manual`."""
    r = run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
            "--username", USERNAME, "--password-file", password_file, "--min-balance", "20")
    assert r.exit_code == 0, r
    assert run("modules", "add", "manual", "--type", "manual").exit_code == 0
    assert run("tariffs", "import", "vds-up").exit_code == 0
    return sim


def number(remoteid):
    """The service number a ``remoteid`` (``<store uid>-<number>-<random>``) carries."""
    uid, number, random = remoteid.split("-")
    assert len(uid) == 8 and len(random) == 12, remoteid
    return int(number)


def is_table(text):
    """Whether ``text`` is a table as resellctl draws it on a terminal: headings over a rule,
    no TSV tab."""
    return "\t" not in text and "\u2500" * 10 in text


def tsv(text):
    """TSV output as a list of dicts keyed by the header row."""
    lines = [line.split("\t") for line in text.splitlines() if line]
    return [dict(zip(lines[0], row)) for row in lines[1:]]


def copy_store(source, target):
    """A copy of the store ``source`` at ``target``, with its secrets file (the modules'
    passwords) if it has one: as a restore of `resellctl backup --with-secrets` would be."""
    for suffix in ("", ".secrets"):
        if os.path.exists(source + suffix):
            shutil.copy(source + suffix, target + suffix)


def read_terminal(fd, until, seen=b"", seconds=30):
    """What the terminal whose controlling side is ``fd`` shows, read on from ``seen`` until
    ``until`` appears, the other side closes, or ``seconds`` pass (a guard against a hang)."""
    import select
    import time

    stop = time.monotonic() + seconds
    while until not in seen and time.monotonic() < stop:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the other side is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen


def resellctl_env(db_path):
    env = dict(os.environ, RESELLCTL_DB=db_path, RESELLCTL_RETRY_WAIT="0")
    return env


@contextmanager
def sim_serve(tmp_path, *args, password="from-file"):
    """Run ``resellctl sim serve ARGS`` in a subprocess, the account's password in a file.

    Yields the process with ``url`` set; on leaving, sends SIGTERM and waits, and its
    ``returncode``, ``out`` and ``err`` hold how it ended and what it printed.
    """
    password_file = tmp_path / "sim-password"
    password_file.write_text(password + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "resellctl", "sim", "serve", "--password-file", str(password_file),
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        process.url = process.stdout.readline().strip()
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.out, process.err = process.communicate(timeout=10)

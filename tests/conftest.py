"""Fixtures: a store in a temporary directory, the embedded simulator on a free loopback port,
and a `run` helper that invokes the real command line in-process. The helpers test files share
are in helpers.py; README.md here says how to run the quick subset."""

import os
import shutil
import time

import pytest
from click.testing import CliRunner

from helpers import PASSWORD, SUCCESS, USERNAME
from resellctl.cli import App, cli
from resellctl.sim import Simulator, serve


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


@pytest.fixture(scope="session")
def initialised_store(tmp_path_factory, empty_config):
    """A store as `resellctl init` makes it, made once a session for db_path to copy."""
    path = str(tmp_path_factory.mktemp("initialised") / "store" / "resellctl.db")
    result = CliRunner().invoke(cli, ["--db", path, "init"], env={"RESELLCTL_CONFIG": empty_config})
    assert result.exit_code == SUCCESS, result.output
    assert os.listdir(os.path.dirname(path)) == ["resellctl.db"]  # all there is to copy
    return path


@pytest.fixture
def db_path(tmp_path, monkeypatch, initialised_store):
    """The path of a new, empty store, which RESELLCTL_DB names: a copy of the one `resellctl
    init` made for the session, in a directory as private (every test's store has its uid)."""
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    path = str(directory / "resellctl.db")
    shutil.copy(initialised_store, path)  # with its mode, 0600
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
    assert r.exit_code == SUCCESS, r
    assert run("modules", "add", "manual", "--type", "manual").exit_code == SUCCESS
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    return sim


@pytest.fixture
def zone():
    """``zone("MSK-3")``: the local zone of this process from now on (a POSIX TZ, so that no
    time zone database is needed); the zone it had is back after the test."""
    before = os.environ.get("TZ")

    def set_zone(name):
        os.environ["TZ"] = name
        time.tzset()
    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()

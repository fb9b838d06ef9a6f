"""Which store a command uses, what names it, and `resellctl init`: only init (and `modules
add`, the first step of a new setup) make a store, so a mistyped path is an error."""

import json
import os
import subprocess
import sys

import pytest

from helpers import SUCCESS, USAGE, configured, digest, mode, refused


@pytest.fixture
def place(tmp_path, monkeypatch):
    """No RESELLCTL_DB, the default under tmp_path; ``place(name)`` a path in tmp_path."""
    monkeypatch.delenv("RESELLCTL_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return lambda name: str(tmp_path / name)


def make_store(run, path, module):
    """A store at ``path`` holding one manual module named ``module``."""
    assert run("--db", path, "init").exit_code == SUCCESS
    assert run("--db", path, "modules", "add", module, "--type", "manual").exit_code == SUCCESS


def module_in_use(run, *args):
    result = run(*args, "modules", "list", "--json")
    assert result.exit_code == SUCCESS, result
    [module] = json.loads(result.stdout)
    return module["name"]


# --- which store -------------------------------------------------------------------------------

def test_the_flag_beats_the_variable_beats_the_file_beats_the_default(
        run, place, tmp_path, monkeypatch):
    for source in ("flag", "env", "file"):
        make_store(run, place(f"{source}.db"), source)
    make_store(run, str(tmp_path / "xdg/resellctl/resellctl.db"), "default")
    assert module_in_use(run) == "default"
    configured(tmp_path, monkeypatch, f'db = "{place("file.db")}"\n')
    assert module_in_use(run) == "file"
    monkeypatch.setenv("RESELLCTL_DB", place("env.db"))
    assert module_in_use(run) == "env"
    assert module_in_use(run, "--db", place("flag.db")) == "flag"


@pytest.mark.parametrize("source, named_by", [
    ("flag", "(from the --db flag)"),
    ("env", "(from the RESELLCTL_DB variable)"),
    ("file", "(from db in {config})"),
    ("default", "(the default location)"),
])
def test_a_mistyped_store_path_is_an_error_naming_the_path_and_its_source(
        run, place, tmp_path, monkeypatch, source, named_by):
    typo = place("typo/resellctl.db")
    args = ["--db", typo] if source == "flag" else []
    if source == "env":
        monkeypatch.setenv("RESELLCTL_DB", typo)
    conf = configured(tmp_path, monkeypatch, f'db = "{typo}"\n' if source == "file" else "")
    if source == "default":
        typo = str(tmp_path / "xdg/resellctl/resellctl.db")
    for command in (["ops", "list"], ["checkevent", "-q"], ["order", "VDS-1"]):
        result = run(*args, *command)
        refused(result, f"no resellctl store at {typo} {named_by.format(config=conf)}")
        assert "resellctl init" in result.stderr
    assert not os.path.exists(os.path.dirname(typo))  # nothing made, not even a directory


def test_a_relative_xdg_data_home_is_ignored(run, place, tmp_path, monkeypatch):
    """As the XDG rules say: taken from the current directory, every directory a command ran
    in would have a store of its own."""
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "home/.local/share/resellctl/resellctl.db"
    refused(run("ops", "list"), f"no resellctl store at {default} (the default location)")
    assert run("init").exit_code == SUCCESS
    assert default.is_file() and not (tmp_path / "relative").exists()


def test_an_empty_file_is_not_yet_a_store(run, place):
    path = place("empty.db")
    open(path, "w").close()
    refused(run("--db", path, "ops", "list"), f"no resellctl store at {path} (an empty file)")
    assert os.path.getsize(path) == 0


@pytest.mark.parametrize("args, env", [(["--db", ""], None), ([], "")],
                         ids=["--db ''", "RESELLCTL_DB=''"])
def test_an_empty_store_path_is_bad_input_not_the_default_store(
        run, place, monkeypatch, args, env):
    if env is not None:
        monkeypatch.setenv("RESELLCTL_DB", env)
    make_store(run, place("xdg/resellctl/resellctl.db"), "default")
    result = run(*args, "modules", "list")
    assert result.exit_code == USAGE and result.stdout == "", result
    assert ("--db" if args else "RESELLCTL_DB is set but empty") in result.stderr


def test_the_sim_commands_need_no_store(run, place, sim):
    result = run("--db", place("none.db"), "sim", "balance", "--url", sim.server.url)
    assert result.exit_code == SUCCESS, result
    assert not os.path.exists(place("none.db"))


# --- the configuration file --------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('db = "/var/lib/x.db\n', " is not valid TOML: Illegal character '\\n' (at line 1, "
                              "column 20)"),
    ('# the store\n\ndb = 3\n', ", line 3: db must be a string, not 3"),
    ('db = "/var/lib/x.db"\ndatabase = "/var/lib/y.db"\n', ", line 2: unknown key 'database'"),
    ('\n[monitor]\nwarn = 1\n', ", line 2: unknown key 'monitor'"),
    ('db = "relative/x.db"\n', ", line 1: db must be an absolute path, not 'relative/x.db'"),
    ('db = "caf\xe9"\n'.encode("latin-1"), " is not valid TOML: not UTF-8 text (at line 1)"),
    ('[status]\nsync_critical_minutes = 5\n', ", line 2: status.sync_warning_minutes (10) is "
                                              "more than status.sync_critical_minutes (5)"),
])
def test_a_bad_configuration_file_is_an_error_naming_it_and_the_line(
        run, place, tmp_path, monkeypatch, text, message):
    path = tmp_path / "resellctl.conf"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    monkeypatch.setenv("RESELLCTL_CONFIG", str(path))
    refused(run("ops", "list"), f"{path}{message}")


def test_toml_errors_carry_their_line(run, place, tmp_path, monkeypatch):
    path = configured(tmp_path, monkeypatch, '# resellctl\n\ndb = = "x"\n')
    refused(run("ops", "list"), f"{path} is not valid TOML: Invalid value (at line 3, column 6)")


def test_a_configuration_file_that_cannot_be_read_or_is_missing_is_an_error(
        run, place, tmp_path, monkeypatch):
    monkeypatch.setenv("RESELLCTL_CONFIG", str(tmp_path))
    refused(run("ops", "list"), f"cannot read the configuration file {tmp_path}: Is a directory")
    monkeypatch.setenv("RESELLCTL_CONFIG", place("missing.conf"))
    refused(run("ops", "list"), f"the configuration file {place('missing.conf')} (named by "
                                "RESELLCTL_CONFIG) does not exist")
    monkeypatch.setenv("RESELLCTL_CONFIG", "")
    refused(run("ops", "list"), "RESELLCTL_CONFIG is set but empty")


def test_no_system_configuration_file_is_fine(run, place, monkeypatch):
    from resellctl import config as config_module

    monkeypatch.delenv("RESELLCTL_CONFIG")
    monkeypatch.setattr(config_module, "DEFAULT_FILE", place("etc/resellctl.conf"))
    make_store(run, place("xdg/resellctl/resellctl.db"), "default")
    assert module_in_use(run) == "default"


@pytest.mark.slow
def test_commands_that_need_no_store_never_read_the_configuration(tmp_path):
    """`--version` and `--help` stay as fast as click itself: no TOML parser, no file read."""
    (tmp_path / "broken.conf").write_text("not = = toml\n")
    probe = ("import sys; from resellctl.cli import main; sys.argv = ['resellctl', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as e:\n"
             "    print(e.code, 'tomllib' in sys.modules, 'resellctl.config' in sys.modules)")
    env = {**os.environ, "RESELLCTL_CONFIG": str(tmp_path / "broken.conf")}
    env.pop("RESELLCTL_DB", None)
    for args, status in ((["--version"], SUCCESS), (["--help"], SUCCESS), (["ops", "list"], USAGE)):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, env=env, timeout=60)
        *_, last = done.stdout.splitlines()
        assert last == (f"{status} False False" if status == SUCCESS else f"{status} True True"), (
            args, done)


# --- init --------------------------------------------------------------------------------------

def test_init_creates_a_private_store_and_says_where(run, place):
    path = place("new/dir/resellctl.db")
    old = os.umask(0)
    try:
        result = run("--db", path, "init")
    finally:
        os.umask(old)
    assert result.exit_code == SUCCESS, result
    assert result.stderr == f"created the store at {path} (from the --db flag)\n"
    assert mode(path) == 0o600 and mode(place("new/dir")) == 0o700
    assert run("--db", path, "ops", "list").exit_code == SUCCESS


def test_init_on_an_existing_store_says_so_and_changes_nothing(run, place):
    path = place("resellctl.db")
    make_store(run, path, "manual")
    before = digest(path), os.stat(path).st_mtime_ns, mode(path)
    result = run("--db", path, "init")
    assert result.exit_code == SUCCESS, result
    assert result.stderr == (f"the store at {path} (from the --db flag) exists already; "
                             "nothing changed\n")
    assert (digest(path), os.stat(path).st_mtime_ns, mode(path)) == before
    assert module_in_use(run, "--db", path) == "manual"


def test_modules_add_makes_the_store_of_a_new_setup_and_says_so(run, place):
    path = place("tour/resellctl.db")
    result = run("--db", path, "modules", "add", "manual", "--type", "manual")
    assert result.exit_code == SUCCESS, result
    assert result.stderr.splitlines() == [f"created the store at {path} (from the --db flag)",
                                          "module manual (manual) added"]
    result = run("--db", path, "modules", "add", "other", "--type", "manual")
    assert result.stderr == "module other (manual) added\n"

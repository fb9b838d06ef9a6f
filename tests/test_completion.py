"""Shell completion: module and tariff names and service numbers from the store, through
click's completion machinery as a shell drives it; never a store created, never a complaint."""

import os
import subprocess
import sys

import pytest
from click.shell_completion import ShellComplete

from helpers import SUCCESS
from resellctl.cli import cli


def completions(line):
    """What Tab offers after ``line`` (everything after its last space is being typed):
    ``[(value, help)]``."""
    *args, incomplete = line.split(" ")
    shell = ShellComplete(cli, {}, "resellctl", "_RESELLCTL_COMPLETE")
    return [(item.value, item.help) for item in shell.get_completions(args[1:], incomplete)]


def values(line):
    return [value for value, _ in completions(line)]


@pytest.fixture
def two_services(run, upstream):
    """Modules vds-up and manual, the simulator's four tariffs, services 1 (VDS-1, acme,
    active) and 2 (Hosting-Start, processing)."""
    assert run("order", "VDS-1", "--client", "acme").exit_code == SUCCESS
    upstream.open_pending()
    assert run("checkevent").exit_code == SUCCESS
    run("order", "Hosting-Start")


def test_names_and_numbers_come_from_the_store(two_services):
    assert completions("resellctl order ") == [
        ("Hosting-Start", "vhost of vds-up"), ("VDS-1", "vds of vds-up"),
        ("VDS-1-RAM", "vds of vds-up"), ("VDS-2", "vds of vds-up")]
    assert values("resellctl order VDS-1") == ["VDS-1", "VDS-1-RAM"]
    assert completions("resellctl services show ") == [
        ("1", "VDS-1 acme active"), ("2", "Hosting-Start processing")]
    for command in ("prolong", "suspend", "resume", "close", "set-param", "change-tariff"):
        assert values(f"resellctl services {command} ") == ["1", "2"], command
    assert values("resellctl services change-tariff 1 VDS-1-") == ["VDS-1-RAM"]
    assert values("resellctl set-module ") == ["1", "2"]
    assert completions("resellctl set-module 1 ") == [("manual", "manual"),
                                                      ("vds-up", "billmanager")]
    for line in ("resellctl tariffs import ", "resellctl tariffs list --module ",
                 "resellctl checkevent --module ", "resellctl events list --module "):
        assert values(line) == ["manual", "vds-up"], line
    assert values("resellctl tariffs import v") == ["vds-up"]
    assert values("resellctl ops list --item ") == ["1", "2"]
    assert values("resellctl tasks list --item 2") == ["2"]
    assert values("resellctl services list --status s") == ["suspended"]


def test_the_store_named_on_the_line_is_the_one_read(run, two_services, tmp_path, monkeypatch):
    other = str(tmp_path / "other.db")
    assert run("--db", other, "modules", "add", "staff", "--type", "manual").exit_code == SUCCESS
    assert values(f"resellctl --db {other} set-module 1 ") == ["staff"]
    monkeypatch.setenv("RESELLCTL_DB", other)
    assert values("resellctl tariffs import ") == ["staff"]


@pytest.mark.slow
def test_without_a_store_nothing_is_offered_created_or_said(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "resellctl.db"
    monkeypatch.setenv("RESELLCTL_DB", str(missing))
    assert values("resellctl order ") == [] and values("resellctl services show ") == []
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("not a store\n")
    assert values(f"resellctl --db {not_a_store} order ") == []
    monkeypatch.setenv("RESELLCTL_DB", "")
    assert values("resellctl tariffs import ") == []
    # As the shell runs it: nothing on stdout or stderr, exit 0, and no store made.
    env = {**os.environ, "RESELLCTL_DB": str(missing), "_RESELLCTL_COMPLETE": "bash_complete",
           "COMP_WORDS": "resellctl order ", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "resellctl"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (SUCCESS, "", "")
    assert not missing.parent.exists()


@pytest.mark.slow
def test_the_shell_scripts_of_the_readme(run, two_services):
    env = {**os.environ, "RESELLCTL_DB": run.db_path}
    for shell in ("bash", "zsh", "fish"):
        script = subprocess.run([sys.executable, "-m", "resellctl"], capture_output=True,
                                text=True, timeout=60,
                                env={**env, "_RESELLCTL_COMPLETE": f"{shell}_source"})
        assert script.returncode == SUCCESS and f"_RESELLCTL_COMPLETE={shell}_complete" in (
            script.stdout), shell
    done = subprocess.run([sys.executable, "-m", "resellctl"], capture_output=True, text=True,
                          timeout=60, env={**env, "_RESELLCTL_COMPLETE": "bash_complete",
                                           "COMP_WORDS": "resellctl services suspend ",
                                           "COMP_CWORD": "3"})
    assert done.stdout.split() == ["plain,1", "plain,2"] and done.stderr == ""

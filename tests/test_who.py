"""Every local change records the real user behind it: the one who ran sudo under sudo, else
the account of the real uid; never a name from $LOGNAME or $USER, which anyone can set."""

import json
import os
import pwd

import pytest

from helpers import SUCCESS, show, tsv

REAL = pwd.getpwuid(os.getuid()).pw_name
OTHER = next(p for p in pwd.getpwall() if p.pw_name != REAL and p.pw_uid != 0)


@pytest.fixture
def claimed(monkeypatch):
    """A caller who claims to be someone else, the way getpass.getuser() would believe."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "mallory")
    monkeypatch.delenv("SUDO_USER", raising=False)


def every_local_change(run, sim):
    """Order a service, cancel a waiting change with --force, switch it to the manual module,
    ask for a change there and close its task: every kind of local change. The service."""
    r = run("order", "VDS-1", "--client", "acme", "--json")
    [created] = json.loads(r.stdout)
    item = created["item"]
    assert run("checkevent").exit_code == SUCCESS
    [row] = tsv(run("services", "suspend", item).stdout)
    assert run("ops", "cancel", row["runningoperation"], "--force", "--yes").exit_code == SUCCESS
    assert run("set-module", item, "manual", "--until-task-closed").exit_code == SUCCESS
    [row] = tsv(run("services", "suspend", item).stdout)
    r = run("tasks", "close", row["task"], "--note", "suspended by hand")
    assert r.exit_code == SUCCESS, r
    return item


def local_changes(service):
    """The ``who`` of each history entry a person made (the engine's and the upstream's own
    name no one)."""
    return [h["who"] for h in service["history"] if h["who"] is not None]


def test_every_local_change_records_the_real_user_not_the_claimed_one(run, upstream, claimed):
    item = every_local_change(run, upstream)
    service = show(run, item)
    assert [(h["who"], h["message"].split(" by ")[0].split(":")[0])
            for h in service["history"]] == [
        (REAL, "ordered VDS-1 for 1 month"),
        (None, "operation 1 (open) accepted"),
        (None, "open (event 101)"),
        (REAL, "requested"),
        (None, "operation 2 (suspend) accepted"),
        (REAL, "operation 2 (suspend) cancelled"),
        (REAL, "processing module vds-up -> manual until its manual task is closed"),
        (REAL, "requested"),
        (None, "operation 3 (suspend) waits for staff"),
        (REAL, "task 3 (postsuspend) closed"),
        (REAL, "processing module manual -> vds-up (task 3 closed)")]
    tasks = json.loads(run("tasks", "list", "--json").stdout)
    assert [t["closedby"] for t in tasks] == ["event 101", REAL, REAL]
    assert "mallory" not in run("services", "show", item, "--json").stdout


def test_services_show_has_a_who_column(run, upstream, claimed):
    r = run("order", "VDS-1", "--json")
    item = json.loads(r.stdout)[0]["item"]
    r = run("services", "show", item)
    assert r.exit_code == SUCCESS, r
    [first] = r.stdout.split("\nhistory:\n")[1].splitlines()[:1]
    assert first.split("  ")[3:5] == [REAL, "ordered VDS-1 for 1 month by operation 1"]
    r = run("services", "show", item, tty=True)
    assert "who" in r.stdout and REAL in r.stdout


def test_under_sudo_the_user_who_ran_sudo(run, upstream, claimed, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", OTHER.pw_name)
    item = every_local_change(run, upstream)
    assert local_changes(show(run, item)) == [OTHER.pw_name] * 7
    tasks = json.loads(run("tasks", "list", "--json").stdout)
    assert tasks[-1]["closedby"] == OTHER.pw_name


def test_sudo_user_counts_only_for_the_real_root(run, upstream, claimed, monkeypatch):
    """Anyone may set SUDO_USER; only under sudo (real uid 0) does it name the user."""
    monkeypatch.setattr(os, "getuid", lambda: OTHER.pw_uid)
    monkeypatch.setenv("SUDO_USER", REAL)
    r = run("order", "VDS-1", "--json")
    item = json.loads(r.stdout)[0]["item"]
    assert local_changes(show(run, item)) == [OTHER.pw_name]


def test_a_sudo_user_that_is_no_account_is_not_believed(run, upstream, claimed, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "mallory")
    r = run("order", "VDS-1", "--json")
    item = json.loads(r.stdout)[0]["item"]
    assert local_changes(show(run, item)) == [pwd.getpwuid(0).pw_name]

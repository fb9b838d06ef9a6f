"""What a sysadmin runs into at 3 a.m.: bad input that must change nothing, odd values, a full or
read-only disk, and the ways out of a stuck service."""

import json

import pytest

from helpers import number, read_terminal, resellctl_env, tsv
from resellctl.sim.errors import ApiError
from resellctl.store import Store


def _books(db_path, sql, params=()):
    store = Store.open(db_path)
    try:
        return [tuple(row) for row in store.all(sql, params)]
    finally:
        store.close()


def _active_service(run, sim):
    assert run("order", "VDS-1", "--client", "acme").exit_code == 0
    sim.open_pending()
    assert run("checkevent").exit_code == 0


@pytest.mark.parametrize("args", [
    ["order", "VDS-1", "--param", "remoteid=5"],
    ["order", "VDS-1", "--param", "sok=no"],
    ["services", "set-param", "1", "elid=9"],
    ["services", "set-param", "1", "authinfo=x:y"],
])
def test_a_parameter_the_protocol_sets_is_refused_before_anything_is_written(run, upstream, args):
    _active_service(run, upstream)
    before = _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id")
    r = run(*args)
    assert r.exit_code == 2, r
    assert "is reserved for the protocol" in r.stderr
    # No service and no operation were written, so nothing is left stuck in status new...
    assert _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id") == before
    assert _books(run.db_path, "SELECT count(*) FROM item") == [(1,)]
    # ...and the service can still be changed.
    assert run("services", "set-param", "1", "hostname=www.example.com").exit_code == 0


@pytest.mark.parametrize("args, name", [
    (["order", "VDS-1", "--param", "addon_101=500"], "addon_101"),
    (["order", "VDS-1", "--addon", "disk=40", "--param", "addon_101=99"], "addon_101"),
    (["order", "VDS-1", "--param", "ADDON_102=4096"], "ADDON_102"),
    (["order", "VDS-1", "--param", "addon_999=1"], "addon_999"),  # not even the tariff's
    (["services", "set-param", "1", "hostname=a", "addon_101=500"], "addon_101"),
])
def test_a_resource_is_set_through_addon_never_through_a_parameter(run, upstream, args, name):
    """A parameter addon_<id> would have the upstream provision 500 GB while the books say 30."""
    _active_service(run, upstream)
    before = _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id")
    sent = len(upstream.requests)
    r = run(*args)
    assert r.exit_code == 2, r
    error, hint = r.stderr.splitlines()
    assert error == f"Error: parameter {name!r} names a resource, which no parameter may set"
    assert hint.startswith("Set resources with --addon NAME=VALUE, ")
    assert _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id") == before
    assert _books(run.db_path, "SELECT count(*) FROM item") == [(1,)]
    assert len(upstream.requests) == sent
    # Through --addon, the upstream and the books agree on the disk.
    [row] = tsv(run("order", "VDS-1", "--addon", "disk=50").stdout)
    upstream.open_pending()
    assert run("checkevent").exit_code == 0
    service = json.loads(run("services", "show", row["item"], "--json").stdout)
    assert service["addons"]["disk"] == "50"
    assert upstream.item(service["upstream_id"]).addons["disk"] == "50"


def _run_with_store(db_path, *args, prepare):
    """``resellctl ARGS`` on an App whose store connection ``prepare`` has set up first."""
    from click.testing import CliRunner

    from resellctl.cli import App, cli

    app = App(stdout_isatty=False, stderr_isatty=False)
    app.db_path = db_path
    prepare(app.store.conn)
    return CliRunner().invoke(cli, list(args), obj=app)


def test_a_full_disk_is_one_line_that_says_so_and_the_books_are_unchanged(run, upstream):
    def fill(conn):
        # The store may grow no further: SQLite answers as it does on a full disk.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    r = _run_with_store(run.db_path, "order", "VDS-1", "--quantity", "50", prepare=fill)
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stderr.splitlines() == [
        f"Error: cannot write the store at {run.db_path}: the disk is full",
        "Free some space on it, then run the command again."]
    assert _books(run.db_path, "SELECT count(*) FROM item") == [(0,)]
    assert not [req for req in upstream.requests if req["func"] == "vds.order.param"]


def test_a_read_only_store_is_one_line_not_a_traceback(run, upstream):
    r = _run_with_store(run.db_path, "modules", "add", "staff", "--type", "manual",
                        prepare=lambda conn: conn.execute("PRAGMA query_only = 1"))
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert f"Error: cannot write the store at {run.db_path}: " in r.stderr
    assert "Check that the file and its directory are writable" in r.stderr


def test_a_store_locked_past_the_busy_timeout_exits_75(run, upstream, monkeypatch):
    import sqlite3

    from resellctl import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(run.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        r = run("modules", "add", "staff", "--type", "manual")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert r.exit_code == 75, r
    assert "stayed locked by another resellctl process" in r.stderr
    assert "Run the command again in a moment." in r.stderr


def test_a_store_that_cannot_be_opened_is_not_called_foreign(run, upstream):
    import os

    # Something that cannot be the write-ahead log is where SQLite would open it.
    os.mkdir(run.db_path + "-wal")
    r = run("ops", "list")
    assert r.exit_code == 2, r
    assert "not a resellctl store" not in r.stderr
    assert f"{run.db_path}-wal is not a regular file: resellctl does not use it" in r.stderr


BIG = "99999999999999999999999"


@pytest.mark.parametrize("args, says", [
    (["ops", "show", BIG], f"operation id must be at most {2**63 - 1}, not {BIG}"),
    (["ops", "start", BIG], f"operation id must be at most {2**63 - 1}"),
    (["services", "show", BIG], "service id must be at most"),
    (["services", "prolong", BIG], "service id must be at most"),
    (["set-module", BIG, "manual"], "service id must be at most"),
    (["tasks", "close", BIG], "task id must be at most"),
    (["ops", "list", "--item", BIG], "is not in the range 1<=x<="),
    (["tasks", "list", "--item", BIG], "is not in the range 1<=x<="),
    (["services", "list", "--after", BIG], "is not in the range 0<=x<="),
    (["events", "list", "--limit", BIG], "is not in the range 0<=x<="),
    (["ops", "start", "\u00b2"], "operation id must be a number, not '\u00b2'"),
    (["services", "show", "1_0"], "service id must be a number, not '1_0'"),
])
def test_an_odd_or_huge_id_is_bad_input_not_a_traceback(run, upstream, args, says):
    _active_service(run, upstream)
    r = run(*args)
    assert r.exit_code == 2, r
    assert says in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("amount, have", [
    (None, "sNaN"), (None, "NaN"), (None, "Infinity"), ("1e999999999", "0"), (None, "99.00")])
def test_shortfalls_whose_amounts_make_no_sense_are_reported_without_a_sum(
        run, upstream, monkeypatch, amount, have):
    """The sum of several shortfalls is ours to compute from the upstream's amounts."""
    sim = upstream

    def charge(account, cost):
        raise ApiError("not_enough_money", "", "Insufficient funds", amount=amount or cost,
                       have=have, currency="EUR", deficit="1.00")

    monkeypatch.setattr(sim, "_charge", charge)
    r = run("order", "VDS-1", "--quantity", "2")
    assert r.exit_code == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 5 and lines[-1] == "Error: 2 of 2 operation(s) failed", r
    assert "together these" not in r.stderr


@pytest.mark.parametrize("args, says", [
    (["--ack-after", "nan"], "'nan' is not a number"),
    (["--ack-after", "inf"], "is not in the range 0<=x<=3650"),
    (["--ack-after", "1e10"], "is not in the range 0<=x<=3650"),
    (["--time-budget", "nan"], "'nan' is not a number"),
])
def test_checkevent_refuses_a_number_that_is_none_or_endless(run, upstream, args, says):
    assert run("order", "VDS-1").exit_code == 0
    upstream.open_pending()  # an event waits
    r = run("checkevent", *args)
    assert r.exit_code == 2, r
    assert says in r.stderr
    # Nothing was read: the feed is where it was.
    assert _books(run.db_path, "SELECT event_cursor FROM processingmodule "
                               "WHERE name = 'vds-up'") == [(0,)]


def test_a_password_typed_at_a_terminal_is_not_echoed(db_path):
    import os
    import pty
    import sys

    typed = "Typed-Secret-42"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: resellctl on a terminal, as a sysadmin runs it
        os.execve(sys.executable, [sys.executable, "-m", "resellctl", "modules", "add", "up",
                                   "--type", "billmanager", "--url",
                                   "http://127.0.0.1:9/billmgr", "--username", "u",
                                   "--api", "events", "--password-stdin"],
                  dict(os.environ, RESELLCTL_DB=db_path))
    screen = read_terminal(terminal, b"Password: ")
    os.write(terminal, typed.encode() + b"\n")
    screen = read_terminal(terminal, b"added", screen)
    os.waitpid(pid, 0)
    os.close(terminal)
    assert b"module up (billmanager, dialect events) added" in screen, screen
    assert typed.encode() not in screen
    store = Store.open(db_path)
    try:
        assert store.password(store.module("up")) == typed
    finally:
        store.close()
    assert _books(db_path, "SELECT password FROM processingmodule") == [(None,)]


def _stuck_setparam(run, upstream):
    """Service 1 active, and its setparam failed (the upstream answered 500): operation 2."""
    _active_service(run, upstream)
    upstream.fault("500", func="vds.edit", count=100)
    r = run("services", "set-param", "1", "hostname=bad_name")
    assert r.exit_code == 75, r
    upstream.clear_faults()
    return 2


def test_a_failed_change_no_longer_wedges_its_service_once_cancelled(run, upstream):
    op_id = _stuck_setparam(run, upstream)
    r = run("services", "suspend", "1")
    assert r.exit_code == 2
    # The message names both ways out.
    assert f"resellctl ops start {op_id}" in r.stderr
    assert f"resellctl ops cancel {op_id}" in r.stderr
    r = run("ops", "cancel", op_id)
    assert r.exit_code == 0, r
    assert f"operation {op_id} (setparam) of service 1 cancelled" in r.stderr
    assert tsv(run("ops", "list", "--item", "1").stdout)[-1]["status"] == "cancelled"
    r = run("services", "suspend", "1")
    assert r.exit_code == 0, r
    assert tsv(r.stdout)[0]["status"] == "waiting"
    history = [h["message"] for h in run_json(run, "services", "show", "1")["history"]]
    assert any(f"operation {op_id} (setparam) cancelled by" in m for m in history)
    # Only failed or new ones: a waiting operation is the upstream's.
    r = run("ops", "cancel", "3")
    assert r.exit_code == 2
    assert "only failed or new operations can be cancelled: operation 3 is waiting" in r.stderr


def test_a_waiting_operation_whose_event_never_comes_can_be_given_up_with_force(run, upstream):
    """The upstream accepted the prolongation, then sent its event malformed (rejected, as it
    must be): the operation would wait forever and hold back every other change of its
    service. `ops cancel --force` gives it up and closes its task."""
    sim = upstream
    _active_service(run, sim)
    r = run("services", "prolong", "1")
    assert r.exit_code == 0, r
    [row] = tsv(r.stdout)
    op_id, task_id = row["runningoperation"], row["task"]
    events = sim.account().events
    events.ack(sim.next_event_id() - 1)  # the good prolong event is gone; a broken one comes
    remote = run_json(run, "services", "show", "1")["upstream_id"]
    sim.inject_event({"id": {"$": str(sim.next_event_id())}, "type": {"$": "prolong"},
                      "item": {"$": remote}, "expiredate": {"$": "someday"}})
    r = run("checkevent")
    assert r.exit_code == 0 and "1 rejected" in r.stdout, r
    assert run_json(run, "ops", "show", op_id)["status"] == "waiting"
    r = run("services", "suspend", "1")
    assert r.exit_code == 2 and f"operation {op_id} (prolong) waiting" in r.stderr
    r = run("ops", "cancel", op_id)
    assert r.exit_code == 2 and f"operation {op_id} is waiting" in r.stderr
    assert "events list --problem" in r.stderr and "--force" in r.stderr
    r = run("ops", "cancel", op_id, "--force", "--yes")
    assert r.exit_code == 0, r
    assert f"operation {op_id} (prolong) of service 1 cancelled" in r.stderr
    shown = run_json(run, "services", "show", "1")
    assert [o["status"] for o in shown["operations"] if o["id"] == int(op_id)] == ["cancelled"]
    [task] = [t for t in shown["tasks"] if t["id"] == int(task_id)]
    assert task["status"] == "closed" and task["closedate"]
    assert any(f"operation {op_id} (prolong) cancelled by" in h["message"] and
               f"while waiting, task {task_id} closed undone" in h["message"]
               for h in shown["history"])
    r = run("services", "suspend", "1")
    assert r.exit_code == 0 and tsv(r.stdout)[0]["status"] == "waiting", r


def test_a_waiting_order_given_up_with_force_keeps_its_service_and_takes_its_event(
        run, upstream):
    """The upstream has the service: giving up the order closes nothing in the books, and the
    event that comes after all is applied as the upstream's own."""
    r = run("order", "VDS-1")
    assert r.exit_code == 0 and tsv(r.stdout)[0]["status"] == "waiting", r
    r = run("ops", "cancel", "1", "--force", "--yes")
    assert r.exit_code == 0, r
    assert r.stderr == "operation 1 (open) of service 1 cancelled\n"
    assert run_json(run, "services", "show", "1")["status"] == 5
    assert run("checkevent").exit_code == 0
    shown = run_json(run, "services", "show", "1")
    assert shown["status"] == 2 and shown["operations"][0]["status"] == "cancelled"


def test_a_service_whose_given_up_order_then_failed_upstream_can_be_closed(run, upstream):
    """An order given up while waiting, then failed upstream after all (openfail): the
    upstream has no item, and closing the service sends nothing and closes it in the books."""
    upstream.fail_next_open("no capacity")
    assert run("order", "VDS-1").exit_code == 0
    assert run("ops", "cancel", "1", "--force", "--yes").exit_code == 0
    assert run("checkevent").exit_code == 0
    assert run_json(run, "services", "show", "1")["status"] == 1
    sent = len(upstream.requests)
    r = run("services", "close", "1", "--yes")
    assert r.exit_code == 0, r
    assert tsv(r.stdout)[0]["status"] == "done"
    assert len(upstream.requests) == sent
    shown = run_json(run, "services", "show", "1")
    assert shown["status"] == 4
    assert "the upstream has no item for it" in shown["history"][-1]["message"]


def test_a_cancelled_change_that_reached_the_upstream_after_all_is_applied_by_its_event(
        run, upstream):
    _active_service(run, upstream)
    # The upstream sets the parameter, and the answer is lost: the operation fails.
    upstream.fault("drop_after_commit", func="vds.edit", count=100)
    assert run("services", "set-param", "1", "hostname=www.example.com").exit_code == 75
    upstream.clear_faults()
    assert run("ops", "cancel", "2").exit_code == 0
    assert run("checkevent").exit_code == 0
    shown = run_json(run, "services", "show", "1")
    assert shown["params"]["hostname"] == "www.example.com"
    assert [o["status"] for o in shown["operations"]] == ["done", "cancelled"]


def test_cancelling_an_order_closes_its_service_unless_it_may_be_upstream(run, upstream):
    upstream.fault("500", func="vds.order.param", count=100)
    assert run("order", "VDS-1").exit_code == 75
    upstream.clear_faults()
    # A 500 may come after the upstream made the service: ops start adopts it instead.
    r = run("ops", "cancel", "1")
    assert r.exit_code == 2
    assert "resellctl ops start 1" in r.stderr
    upstream.topup("-97.00")
    assert run("order", "VDS-1").exit_code == 1  # not enough money: surely not upstream
    r = run("ops", "cancel", "2")
    assert r.exit_code == 0, r
    assert "operation 2 (open) of service 2 cancelled; the service is closed" in r.stderr
    assert run_json(run, "services", "show", "2")["status"] == 4
    # Funds arrive: checkevent does not order the cancelled service after all.
    upstream.topup("100.00")
    assert run("checkevent").exit_code == 0
    assert [number(req["params"]["remoteid"]) for req in upstream.requests
            if req["func"] == "vds.order.param"].count(2) == 1


def run_json(run, *args):
    r = run(*args, "--json")
    assert r.exit_code == 0, r
    return json.loads(r.stdout)


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "", "-5", "4.5"])
def test_an_addon_value_must_be_ascii_digits(run, upstream, value):
    r = run("order", "VDS-1", "--addon", f"ram={value}")
    assert r.exit_code == 2, r
    assert f"addon ram needs a whole number, not {value!r}" in r.stderr
    assert _books(run.db_path, "SELECT count(*) FROM item") == [(0,)]


def test_prolong_by_zero_months_is_refused_not_taken_as_the_default(run, upstream):
    _active_service(run, upstream)
    r = run("services", "prolong", "1", "--period", "0")
    assert r.exit_code == 2, r
    assert "tariff 'VDS-1' is not sold for 0 months (periods: 1, 3, 12)" in r.stderr
    assert [o["operation"] for o in run_json(run, "services", "show", "1")["operations"]] == [
        "open"]


@pytest.mark.parametrize("amount", ["1e400", "9" * 40])
def test_sim_refuses_an_amount_too_large_for_money(run, sim, amount):
    r = run("sim", "topup", amount, "--url", sim.server.url)
    assert r.exit_code == 2, r
    assert f"not an amount of money: {amount!r}" in r.stderr
    assert str(sim.balance()) == "100.00"


def test_an_order_interrupted_by_ctrl_c_says_how_to_send_the_rest(run, upstream):
    import signal
    import subprocess
    import sys
    import time

    upstream.fault("delay", func="vds.order.param", count=20, seconds=0.2)
    process = subprocess.Popen(
        [sys.executable, "-m", "resellctl", "order", "VDS-1", "--quantity", "20"],
        env=resellctl_env(run.db_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    stop = time.monotonic() + 60
    while time.monotonic() < stop and not _books(
            run.db_path, "SELECT id FROM runningoperation WHERE status = 'waiting'"):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err  # as a shell reports an interrupted command
    assert "Traceback" not in err
    assert "Error: interrupted\nThe services are in the books, but operation(s) " in err
    assert "resellctl ops list --status new -q | resellctl ops start -" in err
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert left.split(), "the interrupt came after every order was sent"
    upstream.clear_faults()
    r = run("ops", "start", "-", input=left)
    assert r.exit_code == 0, r
    # Every service is ordered once upstream, none twice.
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 20
    remoteids = sorted(number(item.remoteid) for item in upstream.items.values())
    assert remoteids == list(range(1, 21))


@pytest.mark.parametrize("url, says", [
    ("http://[::1/billmgr", "--url is not a valid URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:99999/billmgr", "--url is not a valid URL (Port out of range"),
    ("http://127.0.0.1:abc/billmgr", "--url is not a valid URL (Port could not be cast"),
    ("http://exa mple.com/billmgr", "--url must be an http(s) URL, not 'http://exa mple.com/"),
    ("https://example.com/billmgr#top", "--url must not hold credentials, a query or a fragment"),
    ("ftp://reseller:Pw-in-url@example.com/", "--url must not hold credentials"),
])
def test_modules_add_refuses_a_url_the_client_could_never_call(run, password_file, url, says):
    r = run("modules", "add", "up", "--type", "billmanager", "--url", url, "--username", "u",
            "--password-file", password_file)
    assert r.exit_code == 2, r
    assert says in r.stderr
    assert "Pw-in-url" not in r.stderr
    assert _books(run.db_path, "SELECT count(*) FROM processingmodule") == [(0,)]


def test_a_dry_run_refuses_what_the_real_start_refuses(run, upstream):
    _active_service(run, upstream)
    r = run("ops", "start", "1", "--dry-run")
    assert r.exit_code == 2, r
    assert "only failed or new operations can be started: operation 1 is done" in r.stderr
    assert r.stdout == ""


def test_an_order_whose_sending_fails_on_a_setting_says_what_was_written(run, upstream,
                                                                         monkeypatch):
    monkeypatch.setenv("RESELLCTL_READ_TIMEOUT", "abc")
    r = run("order", "VDS-1", "--quantity", "3")
    assert r.exit_code == 2, r
    assert r.stderr.splitlines() == [
        "Error: RESELLCTL_READ_TIMEOUT must be a number of at least 0.1, not 'abc'",
        "The services are in the books, but operation(s) 1 to 3 may not have been sent. Send "
        "them with: resellctl ops list --status new -q | resellctl ops start -  (an order is "
        "never made twice upstream), or give them up: resellctl ops cancel ID..."]
    monkeypatch.delenv("RESELLCTL_READ_TIMEOUT")
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert run("ops", "start", "-", input=left).exit_code == 0
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 3


def test_an_order_stops_sending_once_the_upstream_does_not_answer(run, upstream):
    # Each request is dropped before the upstream does anything.
    upstream.fault("drop", func="vds.order.param", count=100)
    r = run("order", "VDS-1", "--quantity", "5")
    assert r.exit_code == 75, r
    assert [(row["runningoperation"], row["status"]) for row in tsv(r.stdout)] == [
        ("1", "failed"), ("2", "new"), ("3", "new"), ("4", "new"), ("5", "new")]
    assert ("operation(s) 2 to 5 not sent, as the upstream did not answer; once it does: "
            "resellctl ops list --status new -q | resellctl ops start -") in r.stderr
    assert "Error: 1 of 5 operation(s) failed, 4 not sent" in r.stderr
    # Only the first order was tried (with its retries); the rest waited for nothing.
    orders = [req["params"]["remoteid"] for req in upstream.requests
              if req["func"] == "vds.order.param"]
    assert {number(o) for o in orders} == {1}
    upstream.clear_faults()
    assert run("ops", "start", "1").exit_code == 0
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert run("ops", "start", "-", input=left).exit_code == 0
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 5


@pytest.mark.parametrize("username", ["a:b", "re seller", "a\nb", "a\x1b[2Jb"])
def test_modules_add_refuses_a_username_authinfo_cannot_carry(run, sim, password_file,
                                                              username):
    r = run("modules", "add", "up", "--type", "billmanager", "--url", sim.server.url,
            "--username", username, "--password-file", password_file)
    assert r.exit_code == 2, r
    assert f"--username must hold no ':', blank or control character, not {username!r}" in (
        r.stderr)
    assert _books(run.db_path, "SELECT count(*) FROM processingmodule") == [(0,)]


def test_an_error_message_never_carries_control_characters_from_upstream(run, upstream):
    """A tariff name from the upstream, with an escape sequence, quoted in a refusal."""
    import sqlite3

    conn = sqlite3.connect(run.db_path)
    with conn:
        conn.execute("UPDATE pricelist SET name = 'VDS-2\x1b[2J\x9b' WHERE name = 'VDS-2'")
    conn.close()
    assert run("order", "VDS-1").exit_code == 0
    run("checkevent")
    r = run("services", "change-tariff", "1", "2")  # VDS-2, 60 GB: refused with its name
    assert r.exit_code == 2, r
    assert "\x1b" not in r.stderr and "\x9b" not in r.stderr
    assert "VDS-2\\x1b[2J\\x9b" in r.stderr

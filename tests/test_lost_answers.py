"""No duplicates, ever: an operation whose answer was lost (the upstream committed, then the
connection dropped) is restarted without a second upstream service or a second charge."""

import os
import json
from decimal import Decimal

import pytest

from helpers import (ERROR, SUCCESS, TEMPFAIL, USAGE, complete, failed_orders, free_port, funcs,
                     months_after, number, op, open_tasks, order_active, resellctl_env, run_json,
                     show, tsv)


def history(run, item):
    return [h["message"] for h in show(run, item)["history"]]


# --- orders: the remoteid makes a second order an `exists`, which is adopted -----------------

def test_a_lost_order_answer_is_adopted_on_the_next_try(run, upstream):
    sim = upstream
    sim.fault("drop_after_commit", func="vds.order.param", count=1)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == SUCCESS, r
    [created] = json.loads(r.stdout)
    assert created["status"] == "waiting"
    # The second try is answered `exists`; the item is read to check it is this order's.
    assert funcs(sim) == ["pricelist.export", "vds.order.param", "vds.order.param", "vds.edit"]
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")
    [(remote, upstream_item)] = sim.items.items()
    assert show(run, created["item"])["upstream_id"] == remote
    assert any(f"adopted the existing upstream item {remote}" in m
               for m in history(run, created["item"]))
    complete(run, {**created, "task": str(created["task"])})
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")


def lost_order(run, sim):
    """An order whose every try was processed upstream and its answer lost; its outcome."""
    sim.fault("drop_after_commit", func="vds.order.param", count=3)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == TEMPFAIL, r  # the upstream stayed silent: try again later
    [created] = json.loads(r.stdout)
    assert created["status"] == "failed" and created["task"] is None
    assert funcs(sim).count("vds.order.param") == 3  # RESELLCTL_RETRY_ATTEMPTS
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")
    failed = op(run, created["runningoperation"])
    assert failed["error_type"] == "transient" and "may have reached" in failed["reason"]
    return created


def test_a_lost_order_restarted_by_ops_start_makes_no_second_service(run, upstream):
    sim = upstream
    created = lost_order(run, sim)
    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    assert row["status"] == "waiting" and row["task"]
    assert funcs(sim).count("vds.order.param") == 4
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")
    complete(run, row)
    service = show(run, created["item"])
    assert service["status"] == 2 and service["upstream_id"] == next(iter(sim.items))
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")


def test_a_lost_order_opened_before_the_restart_ends_done_without_a_stray_task(run,
                                                                               upstream):
    sim = upstream
    created = lost_order(run, sim)
    # cron's checkevent runs before anyone restarts the operation: the open event arrives.
    r = run("checkevent")
    assert r.exit_code == SUCCESS and "1 operations completed" in r.stdout, r
    service = show(run, created["item"])
    assert service["status"] == 2 and service["upstream_id"] == next(iter(sim.items))
    assert op(run, created["runningoperation"])["status"] == "done"
    # The admin's usual restart finds nothing to do.
    r = run("ops", "list", "--status", "failed", "-q")
    assert r.stdout == ""
    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == USAGE and "is done" in r.stderr
    assert open_tasks(run) == []
    assert funcs(sim).count("vds.order.param") == 3
    assert len(sim.items) == 1 and sim.balance() == Decimal("95.00")


def test_a_failed_opening_is_ordered_again_as_a_new_upstream_item(run, upstream):
    sim = upstream
    sim.fail_next_open("No free IP addresses")
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    first = show(run, created["item"])["upstream_id"]
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    failed = op(run, created["runningoperation"])
    assert failed["status"] == "failed" and failed["reason"] == "No free IP addresses"
    service = show(run, created["item"])
    assert service["upstream_id"] is None and service["status"] == 1
    assert sim.items[first].status == 4 and sim.balance() == Decimal("100.00")  # refunded
    [task] = json.loads(run("tasks", "list", "--json").stdout)
    assert task["status"] == "closed"

    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == SUCCESS, r
    second = show(run, created["item"])["upstream_id"]
    assert second not in (None, first)
    assert number(sim.items[second].remoteid) == created["item"]
    [row] = tsv(r.stdout)
    complete(run, row)
    service = show(run, created["item"])
    assert service["status"] == 2 and service["upstream_id"] == second
    assert sim.items[second].status == 2 and sim.balance() == Decimal("95.00")
    assert open_tasks(run) == []


# --- prolong: the upstream's expiry date tells whether an earlier try went through -----------

def test_a_lost_prolong_answer_is_not_sent_again(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    expiry, balance = sim.items[remote].expiredate, sim.balance()
    sim.fault("drop_after_commit", func="service.prolong", count=1)
    r = run("services", "prolong", item, "--period", "3")
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    assert row["status"] == "waiting"
    assert funcs(sim)[-3:] == ["vds.edit", "service.prolong", "vds.edit"]
    assert funcs(sim).count("service.prolong") == 1
    assert sim.balance() == balance - 14
    assert sim.items[remote].expiredate == months_after(expiry, 3)
    assert any("an earlier attempt reached the upstream (it shows expiry "
               f"{sim.items[remote].expiredate}); not sent again" in m for m in history(run, item))
    complete(run, row)
    assert show(run, item)["expiredate"] == months_after(expiry, 3)


def lost_prolong(run, sim, monkeypatch, item):
    """A prolongation processed upstream whose answer was lost, with no try left; its row."""
    sim.fault("drop_after_commit", func="service.prolong", count=1)
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "1")
    r = run("services", "prolong", item, "--period", "3")
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "3")
    assert r.exit_code == TEMPFAIL, r
    [row] = tsv(r.stdout)
    assert row["status"] == "failed" and row["task"] == ""
    assert "checks what the upstream shows first, and never sends the change twice" in r.stderr
    return row


@pytest.mark.parametrize("checkevent_first", [False, True])
def test_a_lost_prolong_restarted_by_ops_start_is_not_sent_again(run, upstream, monkeypatch,
                                                                 checkevent_first):
    sim = upstream
    item, remote = order_active(run, sim)
    expiry, balance = sim.items[remote].expiredate, sim.balance()
    row = lost_prolong(run, sim, monkeypatch, item)
    assert sim.items[remote].expiredate == months_after(expiry, 3)
    if checkevent_first:
        # The prolong event is applied while the operation still looks failed.
        assert run("checkevent").exit_code == SUCCESS
        assert show(run, item)["expiredate"] == months_after(expiry, 3)
        assert op(run, row["runningoperation"])["status"] == "failed"

    r = run("ops", "start", row["runningoperation"])
    assert r.exit_code == SUCCESS, r
    assert funcs(sim)[-1] == "vds.edit" and funcs(sim).count("service.prolong") == 1
    [restarted] = tsv(r.stdout)
    if checkevent_first:
        assert restarted["status"] == "done"  # nothing left to wait for
    else:
        assert restarted["status"] == "waiting"
        complete(run, restarted)
    assert op(run, row["runningoperation"])["status"] == "done"
    assert open_tasks(run) == []
    messages = history(run, item)
    assert any("not sent again" in m for m in messages)
    assert sim.balance() == balance - 14
    assert sim.items[remote].expiredate == months_after(expiry, 3)
    assert show(run, item)["expiredate"] == months_after(expiry, 3)
    run("checkevent")
    assert sim.items[remote].expiredate == months_after(expiry, 3)


def test_a_prolong_that_never_arrived_is_sent_again(run, upstream, monkeypatch):
    sim = upstream
    item, remote = order_active(run, sim)
    expiry, balance = sim.items[remote].expiredate, sim.balance()
    # The upstream's expiry moved on its own, and checkevent has not told us yet: the books
    # are behind, so only the upstream's own date can tell whether a try went through.
    sim.set_expiredate(remote, months_after(expiry, 1))
    sim.fault("500", func="service.prolong", count=1)  # refused before any work
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "1")
    r = run("services", "prolong", item)
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "3")
    assert r.exit_code == TEMPFAIL, r
    assert sim.items[remote].expiredate == months_after(expiry, 1)
    r = run("ops", "start", tsv(r.stdout)[0]["runningoperation"])
    assert r.exit_code == SUCCESS, r
    assert funcs(sim)[-2:] == ["vds.edit", "service.prolong"]
    assert funcs(sim).count("service.prolong") == 2
    assert sim.balance() == balance - 5
    assert sim.items[remote].expiredate == months_after(expiry, 2)
    assert not any("not sent again" in m for m in history(run, item))


# --- two processes at once -------------------------------------------------------------------

HOLD_CLAIM = """
import sys
from resellctl.operations import claim_operation
claim = claim_operation(sys.argv[1], int(sys.argv[2]))
print("held" if claim is not None else "refused", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_an_operation_another_process_is_sending_is_not_sent_again(run, upstream):
    import subprocess
    import sys

    sim = upstream
    item, remote = order_active(run, sim)
    sim.set_balance("0.00")
    r = run("services", "prolong", item)
    op_id = int(tsv(r.stdout)[0]["runningoperation"])
    sim.topup("50.00")
    balance, expiry = sim.balance(), sim.items[remote].expiredate
    # Another process (cron's checkevent re-running it for funds, say) is sending it now.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CLAIM, run.db_path, str(op_id)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        sent = len(sim.requests)
        r = run("ops", "start", op_id)
        assert r.exit_code == TEMPFAIL, r
        assert tsv(r.stdout)[0]["status"] == "busy"
        assert "another resellctl process" in r.stderr
        assert len(sim.requests) == sent
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert op(run, op_id)["trycount"] == 1
    # Once it lets go (here: it ended without sending), the operation can be started.
    r = run("ops", "start", op_id)
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "waiting", r
    assert sim.balance() == balance - 5 and sim.items[remote].expiredate > expiry


def test_two_stores_on_one_upstream_account_never_adopt_each_others_services(
        run, upstream, password_file, tmp_path, monkeypatch):
    """A store rebuilt without its backup (or a staging copy) orders through the same account:
    its service 1 is a new upstream service, not the first store's service 1."""
    sim = upstream
    first = json.loads(run("order", "VDS-1", "--json").stdout)[0]
    assert first["status"] == "waiting"
    monkeypatch.setenv("RESELLCTL_DB", str(tmp_path / "rebuilt.db"))
    assert run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", "reseller@example.net", "--password-file",
               password_file).exit_code == SUCCESS
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    second = json.loads(run("order", "VDS-1", "--json").stdout)[0]
    assert second["item"] == first["item"] == 1 and second["status"] == "waiting"
    assert len(sim.items) == 2 and sim.balance() == 90  # two services, two charges
    remoteids = {item.remoteid for item in sim.items.values()}
    assert len(remoteids) == 2 and {number(r) for r in remoteids} == {1}


@pytest.mark.slow
def test_an_order_another_process_is_sending_is_not_closed_under_it(run, upstream):
    """`services close` of a service whose order failed for funds cancels that order; while
    checkevent re-runs it for funds, the order may be created upstream at any moment, so the
    service must not be closed in the books under it."""
    import subprocess
    import sys

    sim = upstream
    [op_id] = failed_orders(run, sim, 1)
    item = op(run, op_id)["item"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CLAIM, run.db_path, str(op_id)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        r = run("services", "close", item, "--yes")
        assert r.exit_code == TEMPFAIL, r
        assert f"operation {op_id} is being sent by another resellctl process" in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert op(run, op_id)["status"] == "failed"
    assert show(run, item)["status"] == 1
    # Once it lets go, closing cancels the order as before.
    r = run("services", "close", item, "--yes")
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "cancelled", r
    assert show(run, item)["status"] == 4


def test_an_order_whose_first_answer_was_lost_is_not_cancelled_after_a_later_refusal(
        run, upstream, tmp_path):
    """A lost answer, then a clear refusal (bad credentials): the first try may still have
    made the service upstream, so cancelling it in the books is refused."""
    sim = upstream
    sim.fault("drop", func="vds.order.param", count=3)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == TEMPFAIL, r
    op_id = json.loads(r.stdout)[0]["runningoperation"]
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    assert run("modules", "add", "vds-up", "--type", "billmanager", "--password-file",
               str(wrong), "--replace").exit_code == SUCCESS
    r = run("ops", "start", op_id)
    assert r.exit_code == ERROR and "username and password" in r.stderr, r
    r = run("ops", "cancel", op_id)
    assert r.exit_code == USAGE, r
    assert "may have reached the upstream" in r.stderr


# --- a try that provably never sent its change leaves it safe to send -----------------------

def point_module_at(run, url):
    r = run("modules", "add", "vds-up", "--type", "billmanager", "--replace", "--url", url)
    assert r.exit_code == SUCCESS, r


def test_a_prolong_whose_read_before_sending_failed_is_sent_on_restart(run, upstream):
    """The upstream was down: the read made before sending failed, nothing was sent. The
    restart sends the renewal (once, charged once) instead of taking it for done."""
    sim = upstream
    item, remote = order_active(run, sim)
    expiry, balance = sim.items[remote].expiredate, sim.balance()
    point_module_at(run, f"http://127.0.0.1:{free_port()}/billmgr")  # refuses connections
    r = run("services", "prolong", item, "--period", "1")
    assert r.exit_code == TEMPFAIL, r
    assert "the request was not sent" in r.stderr
    [row] = tsv(r.stdout)
    point_module_at(run, sim.server.url)

    r = run("ops", "start", row["runningoperation"])
    assert r.exit_code == SUCCESS, r
    [restarted] = tsv(r.stdout)
    assert restarted["status"] == "waiting"
    assert funcs(sim).count("service.prolong") == 1
    assert sim.balance() == balance - 5
    assert sim.items[remote].expiredate == months_after(expiry, 1)
    assert not any("not sent again" in m for m in history(run, item))
    complete(run, restarted)
    assert show(run, item)["expiredate"] == months_after(expiry, 1)


@pytest.mark.slow
def test_a_prolong_killed_before_it_was_sent_is_sent_on_restart(run, upstream):
    """kill -9 while the read before sending waits for its answer: the renewal never left."""
    import subprocess
    import sys
    import time

    sim = upstream
    item, remote = order_active(run, sim)
    expiry, balance = sim.items[remote].expiredate, sim.balance()
    sim.fault("delay", func="vds.edit", count=1, seconds=20)
    reads = funcs(sim).count("vds.edit")
    proc = subprocess.Popen([sys.executable, "-m", "resellctl", "services", "prolong", str(item)],
                            env=resellctl_env(run.db_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while funcs(sim).count("vds.edit") == reads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert funcs(sim).count("vds.edit") == reads + 1
    finally:
        proc.kill()
        proc.wait(timeout=30)
    sim.clear_faults()
    [op_id] = run("ops", "list", "--status", "new", "-q").stdout.split()

    r = run("ops", "start", op_id)
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "waiting", r
    assert funcs(sim).count("service.prolong") == 1
    assert sim.balance() == balance - 5
    assert sim.items[remote].expiredate == months_after(expiry, 1)


def test_a_prolong_lost_after_sending_with_no_baseline_is_never_taken_for_done(run, upstream):
    """A renewal that may have reached the upstream, with no expiry read before it (a store
    from before the baseline was kept): nothing can tell whether it went through, so it is
    neither sent again nor taken for done; the admin is told how to decide."""
    import sqlite3

    sim = upstream
    item, remote = order_active(run, sim)
    balance = sim.balance()
    sim.set_balance("0.00")
    r = run("services", "prolong", item)
    op_id = tsv(r.stdout)[0]["runningoperation"]
    sim.set_balance(balance)
    with sqlite3.connect(run.db_path) as conn:
        conn.execute("UPDATE runningoperation SET reached = 1, baseline = NULL WHERE id = ?",
                     (op_id,))
    r = run("ops", "start", op_id)
    assert r.exit_code == ERROR, r
    assert "whether the service was prolonged cannot be told" in r.stderr
    assert f"resellctl ops cancel {op_id}" in r.stderr
    assert funcs(sim).count("service.prolong") == 1  # only the refused one
    assert sim.balance() == balance and op(run, op_id)["status"] == "failed"


# --- a remoteid is never used by two orders, whatever happened to the store ------------------

def test_an_order_after_restoring_a_backup_does_not_adopt_another_customers_server(
        run, upstream, tmp_path):
    import shutil
    import sqlite3

    sim = upstream
    assert run("order", "VDS-1", "--client", "first").exit_code == SUCCESS
    backup = str(tmp_path / "backup.db")
    source, copy = sqlite3.connect(run.db_path), sqlite3.connect(backup)
    source.backup(copy)
    source.close()
    copy.close()
    alice = json.loads(run("order", "VDS-2", "--client", "alice", "--json").stdout)[0]
    alices_server = show(run, alice["item"])["upstream_id"]
    assert run("checkevent").exit_code == SUCCESS
    # Restored as the README describes: the backup in place of the store, then --from.
    for suffix in ("-wal", "-shm"):
        if os.path.exists(run.db_path + suffix):
            os.unlink(run.db_path + suffix)
    shutil.copyfile(backup, run.db_path)
    assert run("checkevent", "--from", "101").exit_code == SUCCESS

    r = run("order", "VDS-1", "--client", "bob", "--json")
    assert r.exit_code == SUCCESS, r
    [bob] = json.loads(r.stdout)
    assert bob["item"] == alice["item"]  # the service number repeats ...
    bobs_server = show(run, bob["item"])["upstream_id"]
    assert bobs_server not in (None, alices_server)  # ... the upstream service does not
    assert sim.items[bobs_server].pricelist == "11"
    assert sim.balance() == 100 - 5 - 9 - 5  # three orders, three charges

    assert run("checkevent").exit_code == SUCCESS
    r = run("services", "close", bob["item"], "--yes")
    assert r.exit_code == SUCCESS, r
    assert sim.items[bobs_server].status == 4
    assert sim.items[alices_server].status == 2  # alice keeps her server


def test_an_exists_answer_naming_an_item_of_another_tariff_is_not_adopted(run, upstream):
    """Should an upstream answer `exists` with an item that is not what this order ordered,
    nothing is linked: the operation fails and says which item to look at."""
    sim = upstream
    sim.set_balance("0.00")
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    remoteid = show(run, created["item"])["remoteid"]
    # Another order (of another store, another customer) holds this remoteid upstream.
    with sim.lock:
        account = sim.account()
        other = sim._new_item(account, sim.tariffs["12"], remoteid, 2, "2027-01-01", 1, {},
                              sim.tariffs["12"].addon_values())
    sim.set_balance("100.00")
    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == ERROR, r
    assert (f"the upstream answered that it has this order already, as item {other.id}, but "
            "it has tariff '12' upstream, not VDS-1 (11); nothing was linked") in r.stderr
    assert f"Look at item {other.id} upstream" in r.stderr
    service = show(run, created["item"])
    assert service["upstream_id"] is None and service["status"] == 1
    assert op(run, created["runningoperation"])["error_type"] == "permanent"
    assert sim.balance() == 100 and len(sim.items) == 1
    assert json.loads(run("tasks", "list", "--json").stdout) == []


def test_an_operation_shows_the_request_it_sends_and_nothing_of_the_engines_own(run,
                                                                                upstream):
    r = run("order", "VDS-1", "--param", "ostempl=debian-12", "--addon", "disk=40", "--json")
    op_id = json.loads(r.stdout)[0]["runningoperation"]
    shown = op(run, op_id)
    assert shown["params"] == {"pricelist": 1, "pricelist_remote_id": "11", "period": 1,
                               "datacenter": None, "params": {"ostempl": "debian-12"},
                               "addons": {"101": "40"}}
    text = run("ops", "show", op_id).stdout
    [line] = [line for line in text.splitlines() if line.startswith("params\t")]
    assert line == ("params\taddons.101=40, datacenter=, params.ostempl=debian-12, "
                    "period=1, pricelist=1, pricelist_remote_id=11")


def test_an_order_answered_with_another_services_upstream_item_links_nothing(run, upstream):
    """An upstream that answers a new order with the id of an item another service holds
    (a bug upstream, or a hostile one): linking both would let a close of one delete the
    other's server."""
    sim = upstream
    first = json.loads(run("order", "VDS-1", "--json").stdout)[0]
    taken = show(run, first["item"])["upstream_id"]
    sim._next_item_id = int(taken)  # the upstream hands out the same id again
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == ERROR, r
    [second] = json.loads(r.stdout)
    assert second["status"] == "failed"
    assert (f"the upstream answered that this order is its item {taken}, which is service "
            f"{first['item']} in the books; nothing was linked") in r.stderr
    assert show(run, first["item"])["upstream_id"] == taken
    assert show(run, second["item"])["upstream_id"] is None


def test_an_order_stops_sending_once_the_upstream_does_not_answer(run, upstream):
    # Each request is dropped before the upstream does anything.
    upstream.fault("drop", func="vds.order.param", count=100)
    r = run("order", "VDS-1", "--quantity", "5")
    assert r.exit_code == TEMPFAIL, r
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
    assert run("ops", "start", "1").exit_code == SUCCESS
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert run("ops", "start", "-", input=left).exit_code == SUCCESS
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 5

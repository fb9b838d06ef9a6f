"""No duplicates, ever: an operation whose answer was lost (the upstream committed, then the
connection dropped) is restarted without a second upstream service or a second charge."""

import json
from decimal import Decimal

import pytest

from conftest import number, tsv
from test_lifecycle import complete, failed_orders, funcs, op, order_active, show


def open_tasks(run):
    return json.loads(run("tasks", "list", "--status", "open", "--json").stdout)


def history(run, item):
    return [h["message"] for h in show(run, item)["history"]]


# --- orders: the remoteid makes a second order an `exists`, which is adopted -----------------

def test_a_lost_order_answer_is_adopted_on_the_next_try(run, upstream):
    sim = upstream
    sim.fault("drop_after_commit", func="vds.order.param", count=1)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == 0, r
    [created] = json.loads(r.stdout)
    assert created["status"] == "waiting"
    assert funcs(sim) == ["pricelist.export", "vds.order.param", "vds.order.param"]
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
    assert r.exit_code == 75, r  # the upstream stayed silent: try again later
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
    assert r.exit_code == 0, r
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
    assert r.exit_code == 0 and "1 operations completed" in r.stdout, r
    service = show(run, created["item"])
    assert service["status"] == 2 and service["upstream_id"] == next(iter(sim.items))
    assert op(run, created["runningoperation"])["status"] == "done"
    # The admin's usual restart finds nothing to do.
    r = run("ops", "list", "--status", "failed", "-q")
    assert r.stdout == ""
    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == 2 and "is done" in r.stderr
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
    assert r.exit_code == 0, r
    failed = op(run, created["runningoperation"])
    assert failed["status"] == "failed" and failed["reason"] == "No free IP addresses"
    service = show(run, created["item"])
    assert service["upstream_id"] is None and service["status"] == 1
    assert sim.items[first].status == 4 and sim.balance() == Decimal("100.00")  # refunded
    [task] = json.loads(run("tasks", "list", "--json").stdout)
    assert task["status"] == "closed"

    r = run("ops", "start", created["runningoperation"])
    assert r.exit_code == 0, r
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
    assert r.exit_code == 0, r
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
    assert r.exit_code == 75, r
    [row] = tsv(r.stdout)
    assert row["status"] == "failed" and row["task"] == ""
    assert "not re-sent automatically" in r.stderr
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
        assert run("checkevent").exit_code == 0
        assert show(run, item)["expiredate"] == months_after(expiry, 3)
        assert op(run, row["runningoperation"])["status"] == "failed"

    r = run("ops", "start", row["runningoperation"])
    assert r.exit_code == 0, r
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
    assert r.exit_code == 75, r
    assert sim.items[remote].expiredate == months_after(expiry, 1)
    r = run("ops", "start", tsv(r.stdout)[0]["runningoperation"])
    assert r.exit_code == 0, r
    assert funcs(sim)[-2:] == ["vds.edit", "service.prolong"]
    assert funcs(sim).count("service.prolong") == 2
    assert sim.balance() == balance - 5
    assert sim.items[remote].expiredate == months_after(expiry, 2)
    assert not any("not sent again" in m for m in history(run, item))


def months_after(day, months):
    from datetime import date

    from resellctl.sim.tariffs import add_months

    return add_months(date.fromisoformat(day), months).isoformat()


# --- two processes at once -------------------------------------------------------------------

HOLD_CLAIM = """
import sys
from resellctl.operations import claim_operation
claim = claim_operation(sys.argv[1], int(sys.argv[2]))
print("held" if claim is not None else "refused", flush=True)
sys.stdin.read()
"""


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
        assert r.exit_code == 75, r
        assert tsv(r.stdout)[0]["status"] == "busy"
        assert "another resellctl process" in r.stderr
        assert len(sim.requests) == sent
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert op(run, op_id)["trycount"] == 1
    # Once it lets go (here: it ended without sending), the operation can be started.
    r = run("ops", "start", op_id)
    assert r.exit_code == 0 and tsv(r.stdout)[0]["status"] == "waiting", r
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
               password_file).exit_code == 0
    assert run("tariffs", "import", "vds-up").exit_code == 0
    second = json.loads(run("order", "VDS-1", "--json").stdout)[0]
    assert second["item"] == first["item"] == 1 and second["status"] == "waiting"
    assert len(sim.items) == 2 and sim.balance() == 90  # two services, two charges
    remoteids = {item.remoteid for item in sim.items.values()}
    assert len(remoteids) == 2 and {number(r) for r in remoteids} == {1}


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
        r = run("services", "close", item)
        assert r.exit_code == 75, r
        assert f"operation {op_id} is being sent by another resellctl process" in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert op(run, op_id)["status"] == "failed"
    assert show(run, item)["status"] == 1
    # Once it lets go, closing cancels the order as before.
    r = run("services", "close", item)
    assert r.exit_code == 0 and tsv(r.stdout)[0]["status"] == "cancelled", r
    assert show(run, item)["status"] == 4


def test_an_order_whose_first_answer_was_lost_is_not_cancelled_after_a_later_refusal(
        run, upstream, tmp_path):
    """A lost answer, then a clear refusal (bad credentials): the first try may still have
    made the service upstream, so cancelling it in the books is refused."""
    sim = upstream
    sim.fault("drop", func="vds.order.param", count=3)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == 75, r
    op_id = json.loads(r.stdout)[0]["runningoperation"]
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    assert run("modules", "add", "vds-up", "--type", "billmanager", "--password-file",
               str(wrong), "--replace").exit_code == 0
    r = run("ops", "start", op_id)
    assert r.exit_code == 1 and "username and password" in r.stderr, r
    r = run("ops", "cancel", op_id)
    assert r.exit_code == 2, r
    assert "may have reached the upstream" in r.stderr

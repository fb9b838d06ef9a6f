"""Stuck work is never left for ever: `checkevent` re-runs operations that failed on a temporary
error and those never sent (an order interrupted by Ctrl-C), less often after each try, a few a
run, through the same checks as `ops start`, and never under a module whose auto re-run is off.

The books' times are moved back where a test needs an operation to have rested: the store is
the same as minutes or hours later, without the wait."""

import json
import sqlite3

import pytest

from helpers import (ERROR, INTERRUPTED, SUCCESS, TEMPFAIL, aged, checkevent, funcs, number, op,
                     order_active, statuses, tsv, unanswered_orders)


def test_an_order_failed_on_a_temporary_error_is_re_run_once_it_has_rested(run, upstream):
    sim = upstream
    sim.fault("500", func="vds.order.param", count=100)
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == TEMPFAIL, r
    [row] = json.loads(r.stdout)
    op_id = row["runningoperation"]
    assert op(run, op_id)["error_type"] == "transient"
    sim.clear_faults()
    # Tried once: it rests ten minutes before checkevent tries it again.
    assert checkevent(run)["retried"] == 0
    aged(run.db_path, [op_id], minutes=9)
    assert checkevent(run)["retried"] == 0
    assert op(run, op_id)["status"] == "failed"
    aged(run.db_path, [op_id], minutes=11)
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert ", 1 stuck re-run" in r.stdout
    again = op(run, op_id)
    assert (again["status"], again["trycount"]) == ("waiting", 2)
    assert [number(item.remoteid) for item in sim.items.values()] == [row["item"]]
    # Once accepted, its event completes it as any other's.
    r = run("checkevent")
    assert "1 operations completed" in r.stdout and op(run, op_id)["status"] == "done"


def test_an_operation_dated_ahead_by_a_clock_put_back_is_re_run(run, upstream):
    """Failed while the clock ran a year ahead: re-run now, not once the clock gets there."""
    sim = upstream
    sim.fault("500", func="vds.order.param", count=100)
    [row] = json.loads(run("order", "VDS-1", "--json").stdout)
    sim.clear_faults()
    aged(run.db_path, [row["runningoperation"]], days=-365)
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert ", 1 stuck re-run" in r.stdout
    assert op(run, row["runningoperation"])["status"] == "waiting"


def test_operations_an_interrupted_order_left_unsent_are_sent_five_minutes_on(run, upstream):
    sim = upstream
    ops = unanswered_orders(run, sim, 5)
    assert checkevent(run)["retried"] == 0  # just written: their order may still be sending them
    aged(run.db_path, ops, minutes=6)
    summary = checkevent(run)
    # The four never sent had rested enough; the one tried once rests ten minutes.
    assert summary["retried"] == 4
    assert statuses(run, ops) == ["failed"] + ["sent"] * 4
    aged(run.db_path, ops[:1], minutes=11)
    assert checkevent(run)["retried"] == 1
    assert statuses(run, ops) == ["sent"] * 5
    # Each service ordered once upstream, the one whose answer was lost too.
    assert sorted(number(item.remoteid) for item in sim.items.values()) == list(range(1, 6))


@pytest.mark.parametrize("tries, rested, due", [
    (0, 4, False), (0, 6, True),
    (3, 39, False), (3, 41, True),  # 5 minutes x 2^3
    (12, 239, False), (12, 241, True),  # never more than four hours apart
])
def test_the_rest_doubles_with_each_try_up_to_four_hours(run, upstream, tries, rested, due):
    sim = upstream
    [op_id] = unanswered_orders(run, sim, 1)
    with sqlite3.connect(run.db_path) as conn:
        conn.execute("UPDATE runningoperation SET trycount = ?", (tries,))
    conn.close()
    aged(run.db_path, [op_id], minutes=rested)
    assert checkevent(run)["retried"] == int(due)
    assert statuses(run, [op_id]) == ["sent" if due else "failed"]


def test_at_most_twenty_a_run_oldest_first(run, upstream):
    sim = upstream
    sim.topup("100.00")  # 25 orders of 5.00
    ops = unanswered_orders(run, sim, 25)
    aged(run.db_path, ops, hours=1)
    summary = checkevent(run)
    assert (summary["retried"], summary["stuck"]) == (20, 5)
    assert statuses(run, ops) == ["sent"] * 20 + ["new"] * 5
    aged(run.db_path, ops[20:], hours=1)
    assert (checkevent(run)["retried"], statuses(run, ops)) == (5, ["sent"] * 25)


def test_the_first_re_run_that_gets_no_answer_ends_them(run, upstream):
    """Each would only wait out its own retries, holding the sync lock."""
    sim = upstream
    ops = unanswered_orders(run, sim, 4)
    aged(run.db_path, ops, hours=1)
    sim.fault("500", func="vds.order.param", count=100)
    before = funcs(sim).count("vds.order.param")
    summary = checkevent(run)
    assert summary["retried"] == 1
    assert funcs(sim).count("vds.order.param") - before == 3  # one operation's three attempts
    assert statuses(run, ops) == ["failed"] + ["new"] * 3


@pytest.mark.slow
def test_re_runs_end_with_the_time_budget(run, upstream):
    sim = upstream
    ops = unanswered_orders(run, sim, 6)
    aged(run.db_path, ops, hours=1)
    sim.fault("delay", func="vds.order.param", count=6, seconds=1)
    summary = checkevent(run, "--time-budget", "2")
    assert 1 <= summary["retried"] <= 3, summary
    assert statuses(run, ops).count("sent") == summary["retried"]
    aged(run.db_path, ops, hours=1)
    checkevent(run)
    assert statuses(run, ops) == ["sent"] * 6


def test_a_change_whose_answer_was_lost_is_looked_for_upstream_not_sent_twice(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    # Suspended upstream, the answer lost; nor could the upstream's view be read after that.
    sim.fault("drop_after_commit", func="vds.suspend")
    sim.fault("500", func="vds.edit", count=100)
    r = run("services", "suspend", item)
    assert r.exit_code == TEMPFAIL, r
    [row] = tsv(r.stdout)
    assert sim.items[remote].status == 3
    sim.clear_faults()
    sent = funcs(sim).count("vds.suspend")
    aged(run.db_path, [row["runningoperation"]], hours=1)
    assert checkevent(run)["retried"] == 1
    assert funcs(sim).count("vds.suspend") == sent
    assert statuses(run, [row["runningoperation"]]) == ["sent"]


def test_a_module_without_auto_re_run_leaves_them_and_says_so(run, upstream):
    sim = upstream
    ops = unanswered_orders(run, sim, 3)
    assert run("modules", "edit", "vds-up", "--no-auto-rerun").exit_code == SUCCESS
    aged(run.db_path, ops, hours=1)
    sent = funcs(sim).count("vds.order.param")
    r = run("checkevent", "-q")
    assert (r.exit_code, r.stdout) == (SUCCESS, "")
    assert r.stderr == (
        "warning: module vds-up: 1 operation(s) failed (1) and 2 not sent for 5 minutes or "
        "more (2, 3): see `resellctl ops list --status failed` and `resellctl ops list --status "
        "new`; checkevent re-runs none of them (auto re-run is off for this module), and "
        "`resellctl ops start ID` sends one now\n")
    assert funcs(sim).count("vds.order.param") == sent
    assert statuses(run, ops) == ["failed", "new", "new"]


def test_operations_that_failed_for_another_reason_wait_for_an_admin(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    sim.delete(remote)  # upstream, before our checkevent hears of it
    r = run("services", "suspend", item)
    assert r.exit_code == ERROR, r
    [row] = tsv(r.stdout)
    assert op(run, row["runningoperation"])["error_type"] == "permanent"
    aged(run.db_path, [row["runningoperation"]], hours=5)
    sent = funcs(sim).count("vds.suspend")
    summary = checkevent(run, "--max-events", "1")  # the close event waits: the service stays
    assert (summary["retried"], summary["stuck"]) == (0, 1)
    assert funcs(sim).count("vds.suspend") == sent


def test_a_manual_modules_operation_left_unstarted_gets_its_task_five_minutes_on(
        run, upstream, monkeypatch):
    """Ctrl-C between writing a manual module's operation and opening its task: checkevent
    opens the task once the operation has rested, and sends nothing anywhere."""
    from resellctl import outcomes

    item, _ = order_active(run, upstream)
    assert run("set-module", item, "manual").exit_code == SUCCESS
    accepted = outcomes.accepted

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outcomes, "accepted", interrupted)
    r = run("services", "change-tariff", item, "VDS-2")
    assert r.exit_code == INTERRUPTED, r
    monkeypatch.setattr(outcomes, "accepted", accepted)
    [row] = json.loads(run("ops", "list", "--item", item, "--status", "new", "--json").stdout)
    op_id = row["id"]
    assert checkevent(run)["retried"] == 0  # just written: its command may still be at it
    assert op(run, op_id)["status"] == "new"
    aged(run.db_path, [op_id], minutes=6)
    sent = len(upstream.requests)
    assert run("checkevent").exit_code == SUCCESS
    started = op(run, op_id)
    assert started["status"] == "waiting" and started["task"]
    [task] = [t for t in json.loads(run("tasks", "list", "--json").stdout)
              if t["runningoperation"] == op_id]
    assert (task["id"], task["type"], task["status"]) == (started["task"],
                                                          "postchangepricelist", "open")
    assert [q["func"] for q in upstream.requests[sent:]
            if q["func"] not in ("item.event.list", "item.event.ack", "subaccount")] == []

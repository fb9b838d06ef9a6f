"""Giving up an operation: `ops cancel` of one that failed or was never sent, `--force` for one
that waits upstream for an event that never comes, and what becomes of its service, its task and
an event that comes after all."""

from helpers import ERROR, SUCCESS, TEMPFAIL, USAGE, number, op, order_active, show, tsv


def _stuck_setparam(run, upstream):
    """Service 1 active, and its setparam failed (the upstream answered 500): operation 2."""
    order_active(run, upstream)
    upstream.fault("500", func="vds.edit", count=100)
    r = run("services", "set-param", "1", "hostname=bad_name")
    assert r.exit_code == TEMPFAIL, r
    upstream.clear_faults()
    return 2


def test_a_failed_change_no_longer_wedges_its_service_once_cancelled(run, upstream):
    op_id = _stuck_setparam(run, upstream)
    r = run("services", "suspend", "1")
    assert r.exit_code == USAGE
    # The message names both ways out.
    assert f"resellctl ops start {op_id}" in r.stderr
    assert f"resellctl ops cancel {op_id}" in r.stderr
    r = run("ops", "cancel", op_id)
    assert r.exit_code == SUCCESS, r
    assert f"operation {op_id} (setparam) of service 1 cancelled" in r.stderr
    assert tsv(run("ops", "list", "--item", "1").stdout)[-1]["status"] == "cancelled"
    r = run("services", "suspend", "1")
    assert r.exit_code == SUCCESS, r
    assert tsv(r.stdout)[0]["status"] == "waiting"
    history = [h["message"] for h in show(run, "1")["history"]]
    assert any(f"operation {op_id} (setparam) cancelled by" in m for m in history)
    # Only failed or new ones: a waiting operation is the upstream's.
    r = run("ops", "cancel", "3")
    assert r.exit_code == USAGE
    assert "only failed or new operations can be cancelled: operation 3 is waiting" in r.stderr


def test_a_waiting_operation_whose_event_never_comes_can_be_given_up_with_force(run, upstream):
    """The upstream accepted the prolongation, then sent its event malformed (rejected, as it
    must be): the operation would wait forever and hold back every other change of its
    service. `ops cancel --force` gives it up and closes its task."""
    sim = upstream
    order_active(run, sim)
    r = run("services", "prolong", "1")
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    op_id, task_id = row["runningoperation"], row["task"]
    events = sim.account().events
    events.ack(sim.next_event_id() - 1)  # the good prolong event is gone; a broken one comes
    remote = show(run, "1")["upstream_id"]
    sim.inject_event({"id": {"$": str(sim.next_event_id())}, "type": {"$": "prolong"},
                      "item": {"$": remote}, "expiredate": {"$": "someday"}})
    r = run("checkevent")
    assert r.exit_code == SUCCESS and "1 rejected" in r.stdout, r
    assert op(run, op_id)["status"] == "waiting"
    r = run("services", "suspend", "1")
    assert r.exit_code == USAGE and f"operation {op_id} (prolong) waiting" in r.stderr
    r = run("ops", "cancel", op_id)
    assert r.exit_code == USAGE and f"operation {op_id} is waiting" in r.stderr
    assert "events list --problem" in r.stderr and "--force" in r.stderr
    r = run("ops", "cancel", op_id, "--force", "--yes")
    assert r.exit_code == SUCCESS, r
    assert f"operation {op_id} (prolong) of service 1 cancelled" in r.stderr
    shown = show(run, "1")
    assert [o["status"] for o in shown["operations"] if o["id"] == int(op_id)] == ["cancelled"]
    [task] = [t for t in shown["tasks"] if t["id"] == int(task_id)]
    assert task["status"] == "closed" and task["closedate"]
    assert any(f"operation {op_id} (prolong) cancelled by" in h["message"] and
               f"while waiting, task {task_id} closed undone" in h["message"]
               for h in shown["history"])
    r = run("services", "suspend", "1")
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "waiting", r


def test_a_waiting_order_given_up_with_force_keeps_its_service_and_takes_its_event(
        run, upstream):
    """The upstream has the service: giving up the order closes nothing in the books, and the
    event that comes after all is applied as the upstream's own."""
    r = run("order", "VDS-1")
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "waiting", r
    r = run("ops", "cancel", "1", "--force", "--yes")
    assert r.exit_code == SUCCESS, r
    assert r.stderr == "operation 1 (open) of service 1 cancelled\n"
    assert show(run, "1")["status"] == 5
    assert run("checkevent").exit_code == SUCCESS
    shown = show(run, "1")
    assert shown["status"] == 2 and shown["operations"][0]["status"] == "cancelled"


def test_a_service_whose_given_up_order_then_failed_upstream_can_be_closed(run, upstream):
    """An order given up while waiting, then failed upstream after all (openfail): the
    upstream has no item, and closing the service sends nothing and closes it in the books."""
    upstream.fail_next_open("no capacity")
    assert run("order", "VDS-1").exit_code == SUCCESS
    assert run("ops", "cancel", "1", "--force", "--yes").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    assert show(run, "1")["status"] == 1
    sent = len(upstream.requests)
    r = run("services", "close", "1", "--yes")
    assert r.exit_code == SUCCESS, r
    assert tsv(r.stdout)[0]["status"] == "done"
    assert len(upstream.requests) == sent
    shown = show(run, "1")
    assert shown["status"] == 4
    assert "the upstream has no item for it" in shown["history"][-1]["message"]


def test_a_cancelled_change_that_reached_the_upstream_after_all_is_applied_by_its_event(
        run, upstream):
    order_active(run, upstream)
    # The upstream sets the parameter, and the answer is lost: the operation fails.
    upstream.fault("drop_after_commit", func="vds.edit", count=100)
    assert run("services", "set-param", "1", "hostname=www.example.com").exit_code == TEMPFAIL
    upstream.clear_faults()
    assert run("ops", "cancel", "2").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    shown = show(run, "1")
    assert shown["params"]["hostname"] == "www.example.com"
    assert [o["status"] for o in shown["operations"]] == ["done", "cancelled"]


def test_cancelling_an_order_closes_its_service_unless_it_may_be_upstream(run, upstream):
    upstream.fault("500", func="vds.order.param", count=100)
    assert run("order", "VDS-1").exit_code == TEMPFAIL
    upstream.clear_faults()
    # A 500 may come after the upstream made the service: ops start adopts it instead.
    r = run("ops", "cancel", "1")
    assert r.exit_code == USAGE
    assert "resellctl ops start 1" in r.stderr
    upstream.topup("-97.00")
    assert run("order", "VDS-1").exit_code == ERROR  # not enough money: surely not upstream
    r = run("ops", "cancel", "2")
    assert r.exit_code == SUCCESS, r
    assert "operation 2 (open) of service 2 cancelled; the service is closed" in r.stderr
    assert show(run, "2")["status"] == 4
    # Funds arrive: checkevent does not order the cancelled service after all.
    upstream.topup("100.00")
    assert run("checkevent").exit_code == SUCCESS
    assert [number(req["params"]["remoteid"]) for req in upstream.requests
            if req["func"] == "vds.order.param"].count(2) == 1

"""`modules remove`: refused while anything of the module is still in progress, and a module
added after it never inherits what it left (its id is never given again)."""

from helpers import (PASSWORD, SUCCESS, USAGE, USERNAME, checkevent, op, order_active, refused,
                     show, tsv)
from resellctl.sim import Simulator, serve


def test_refused_while_an_operation_of_a_closed_service_waits(run, upstream):
    """A change waiting for staff under the manual module, its service since deleted upstream:
    removing the module would leave the operation and its open task to whatever module came
    next."""
    sim = upstream
    item, _ = order_active(run, sim)
    assert run("set-module", item, "manual").exit_code == SUCCESS
    [row] = tsv(run("services", "prolong", item).stdout)
    sim.delete(int(show(run, item)["upstream_id"]))
    assert run("checkevent").exit_code == SUCCESS
    assert show(run, item)["status"] == 4
    for r in (run("modules", "remove", "manual", "--yes"),
              run("modules", "remove", "manual", stdin_tty=True, input="y\n")):
        assert r.exit_code == USAGE, r
        refused(r, f"module 'manual' has 1 operation(s) not finished: "
                   f"{row['runningoperation']}")
        assert "resellctl ops cancel ID" in r.stderr and "[y/N]" not in r.stderr
    assert op(run, row["runningoperation"])["status"] == "waiting"
    assert run("ops", "cancel", row["runningoperation"], "--force", "--yes").exit_code == SUCCESS
    assert run("modules", "remove", "manual", "--yes").exit_code == SUCCESS


def test_a_new_module_never_takes_a_removed_ones_events_for_its_own(run, upstream,
                                                                    password_file):
    """The removed module had the highest id; the next one added applies its own upstream's
    events, whose ids the old upstream's log holds too."""
    old = upstream
    assert run("modules", "remove", "manual", "--yes").exit_code == SUCCESS
    item, _ = order_active(run, old)
    assert run("services", "close", item, "--yes").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    assert run("modules", "remove", "vds-up", "--yes").exit_code == SUCCESS
    fresh = Simulator(username=USERNAME, password=PASSWORD, balance="100.00")
    with serve(fresh) as server:
        assert run("modules", "add", "new-up", "--type", "billmanager", "--url", server.url,
                   "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
        assert run("tariffs", "import", "new-up").exit_code == SUCCESS
        [row] = tsv(run("order", "VDS-1").stdout)
        fresh.open_pending()
        summary = checkevent(run)
    assert (summary["applied"], summary["skipped"], summary["completed"]) == (1, 0, 1)
    assert show(run, row["item"])["status"] == 2
    assert op(run, row["runningoperation"])["status"] == "done"

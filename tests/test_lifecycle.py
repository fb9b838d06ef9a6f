"""A service's life after its order: prolong, suspend, resume, close, change tariff, set
parameters, each an operation sent upstream and completed by its event (`checkevent`)."""

import json

import pytest

from helpers import (ERROR, PASSWORD, SUCCESS, TEMPFAIL, USAGE, USERNAME, change, complete,
                     failed_orders, funcs, is_table, op, order_active, refused, show, tsv)
from resellctl.sim.errors import ApiError


def test_prolong_suspend_resume_set_param_change_tariff_close(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    before = show(run, item)["expiredate"]
    balance = sim.balance()

    row = change(run, "prolong", item, "--period", "3")
    assert row["status"] == "waiting" and row["task"]
    assert sim.requests[-1]["func"] == "service.prolong"
    assert sim.requests[-1]["params"]["elid"] == remote
    assert sim.requests[-1]["params"]["period"] == "3"
    assert sim.balance() == balance - 14
    complete(run, row)
    after = show(run, item)["expiredate"]
    assert after > before and after == sim.items[remote].expiredate

    row = change(run, "suspend", item)
    assert sim.requests[-1]["func"] == "vds.suspend"
    complete(run, row)
    assert show(run, item)["status"] == 3

    row = change(run, "resume", item)
    assert sim.requests[-1]["func"] == "vds.resume"
    complete(run, row)
    assert show(run, item)["status"] == 2

    row = change(run, "set-param", item, "hostname=www.example.com", "ostempl=debian-12")
    sent = sim.requests[-1]
    assert sent["func"] == "vds.edit" and sent["params"]["sok"] == "ok"
    assert sent["params"]["hostname"] == "www.example.com"
    complete(run, row)
    assert show(run, item)["params"]["hostname"] == "www.example.com"

    row = change(run, "change-tariff", item, "VDS-1-RAM")  # the same disk: upstream's to do
    assert row["status"] == "waiting"
    sent = sim.requests[-1]
    assert sent["func"] == "service.changepricelist" and sent["params"]["pricelist"] == "13"
    assert sim.items[remote].pricelist == "13"
    complete(run, row)
    service = show(run, item)
    assert service["pricelist"] == "VDS-1-RAM"
    assert service["addons"] == {"disk": "30", "ram": "2048"}
    # The history names the tariff as the reseller knows it, not by the upstream's id.
    assert "tariff VDS-1-RAM" in service["history"][-1]["message"]

    row = change(run, "close", item, "--yes")
    assert sim.requests[-1]["func"] == "vds.delete"
    complete(run, row)
    service = show(run, item)
    assert service["status"] == 4
    # Every change is in the history, and every operation names the service.
    kinds = [o["operation"] for o in service["operations"]]
    assert kinds == ["open", "prolong", "suspend", "resume", "setparam", "changepricelist",
                     "close"]
    assert all(o["status"] == "done" for o in service["operations"])
    assert [t["type"] for t in service["tasks"]] == [
        "postopen", "postprolong", "postsuspend", "postresume", "postsetparam",
        "postchangepricelist", "postclose"]
    assert all(t["status"] == "closed" for t in service["tasks"])
    messages = " | ".join(h["message"] for h in service["history"])
    for word in ("prolong", "suspend", "resume", "hostname=www.example.com", "VDS-1-RAM",
                 "close"):
        assert word in messages


def test_show_and_list_services(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim, client="acme")
    other, _ = order_active(run, sim, client="globex")
    run("services", "suspend", other)
    run("checkevent")

    r = run("services", "show", item)
    assert r.exit_code == SUCCESS, r
    for section in ("params:", "addons:", "operations:", "tasks:", "history:"):
        assert section in r.stdout
    assert "disk  30" in r.stdout and "postopen" in r.stdout

    rows = tsv(run("services", "list").stdout)
    assert [row["id"] for row in rows] == [str(item), str(other)]
    assert rows[0]["upstream_id"] == remote and rows[0]["pricelist"] == "VDS-1"
    assert rows[0]["processingmodule"] == "vds-up"
    assert run("services", "list", "--status", "3", "-q").stdout.split() == [str(other)]
    assert run("services", "list", "--client", "acme", "-q").stdout.split() == [str(item)]
    assert run("services", "list", "--client", "acme", "--status", "3", "-q").stdout == ""
    listed = json.loads(run("services", "list", "--json").stdout)
    assert [s["status"] for s in listed] == [2, 3]


@pytest.mark.parametrize("setup, args, words", [
    ([], ["resume", "{item}"], "is active, not suspended"),
    ([["suspend"]], ["suspend", "{item}"], "is suspended, not active"),
    ([["close", "--yes"]], ["prolong", "{item}"], "is deleted"),
    ([["close", "--yes"]], ["resume", "{item}"], "is deleted"),
    ([], ["prolong", "{item}", "--period", "2"], "not sold for 2 months"),
    ([], ["change-tariff", "{item}", "VDS-1"], "already has tariff 'VDS-1'"),
    ([], ["change-tariff", "{item}", "Hosting-Start"], "is for vhost"),
    ([], ["change-tariff", "{item}", "VDS-9"], "no tariff 'VDS-9'"),
    ([], ["set-param", "{item}", "novalue"], "NAME=VALUE"),
    ([], ["prolong", "999"], "no service 999"),
    ([], ["suspend", "abc"], "must be a number"),
])
def test_nonsense_is_refused_with_exit_2_and_one_line(run, upstream, setup, args, words):
    sim = upstream
    item, _ = order_active(run, sim)
    for step in setup:
        assert run("services", *step, item).exit_code == SUCCESS
        assert run("checkevent").exit_code == SUCCESS
    sent = len(sim.requests)
    r = run("services", *[a.format(item=item) for a in args])
    refused(r, words)
    assert len(sim.requests) == sent  # nothing went upstream
    assert len(show(run, item)["operations"]) == 1 + len(setup)


def test_a_second_operation_waits_for_the_first(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    row = change(run, "suspend", item)
    sent = len(sim.requests)
    r = run("services", "prolong", item)
    assert r.exit_code == USAGE
    assert (f"service {item} already has operation {row['runningoperation']} (suspend) waiting"
            in r.stderr)
    assert len(sim.requests) == sent
    # A failed one blocks too, until it is restarted and done.
    complete(run, row)
    sim.set_balance("1.00")
    assert run("services", "prolong", item).exit_code == ERROR
    r = run("services", "resume", item)
    assert r.exit_code == USAGE and "(prolong) failed" in r.stderr and "ops start" in r.stderr


def test_transient_failures_are_retried_within_bounds(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    expiry = sim.items[remote].expiredate
    sim.fault("500", func="service.prolong", count=1)
    row = change(run, "prolong", item)
    assert row["status"] == "waiting"
    # The 500 may have been processed: the upstream's view was read before the second try.
    assert funcs(sim)[-3:] == ["service.prolong", "vds.edit", "service.prolong"]
    assert sim.items[remote].expiredate > expiry
    assert op(run, row["runningoperation"])["trycount"] == 1

    complete(run, row)
    sim.fault("500", func="vds.suspend", count=10)
    r = run("services", "suspend", item)
    assert r.exit_code == TEMPFAIL, r  # RESELLCTL_RETRY_ATTEMPTS=3: three tries, then it gives up
    assert funcs(sim)[-5:] == ["vds.suspend", "vds.edit", "vds.suspend", "vds.edit",
                               "vds.suspend"]
    failed = op(run, tsv(r.stdout)[0]["runningoperation"])
    assert failed["status"] == "failed" and failed["error_type"] == "transient"
    assert "HTTP 500" in failed["reason"]
    assert json.loads(run("tasks", "list", "--status", "open", "--json").stdout) == []
    assert sim.items[remote].status == 2


def test_permanent_failures_fail_at_once(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    sim.delete(remote)  # upstream, before our checkevent hears of it
    sent = len(sim.requests)
    r = run("services", "suspend", item)
    assert r.exit_code == ERROR, r
    assert funcs(sim)[-1] == "vds.suspend" and len(sim.requests) == sent + 1
    assert "is deleted" in r.stderr and "resellctl ops start" in r.stderr
    [row] = tsv(r.stdout)
    assert f"or give it up: resellctl ops cancel {row['runningoperation']}" in r.stderr
    failed = op(run, row["runningoperation"])
    assert failed["status"] == "failed" and failed["error_type"] == "permanent"
    assert failed["trycount"] == 1 and len(failed["errors"]) == 1
    assert row["task"] == ""


def test_a_task_under_an_upstream_module_closes_itself(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    row = change(run, "suspend", item)
    r = run("tasks", "close", row["task"])
    assert r.exit_code == USAGE and "closes itself" in r.stderr
    complete(run, row)
    r = run("tasks", "close", row["task"])
    assert r.exit_code == USAGE and "closed already" in r.stderr


def test_upstream_params_never_reach_the_terminal_as_markup_or_control(run, upstream,
                                                                       monkeypatch):
    sim = upstream
    monkeypatch.setenv("COLUMNS", "200")  # the terminal's width, as rich reads it
    item, remote = order_active(run, sim, client="[bold]acme[/bold]")
    sim.setparam(remote, note="[red]x[/red]\x1b[2J")
    sim.suspend(remote, msg="abuse [blink]now[/blink]\x07")
    assert run("checkevent").exit_code == SUCCESS

    r = run("services", "show", item, tty=True)
    assert r.exit_code == SUCCESS, r
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "[red]x[/red]\\x1b[2J" in r.stdout  # the markup shown as text, the escape spelled
    assert "[blink]now[/blink]\\x07" in r.stdout
    assert is_table(r.stdout)  # drawn as rich tables

    r = run("services", "list", tty=True)
    assert r.exit_code == SUCCESS, r
    assert "[bold]acme[/bold]" in r.stdout and "\x1b" not in r.stdout

    # In a pipe: the same escaping, one line per row.
    r = run("services", "show", item)
    assert "  note  [red]x[/red]\\x1b[2J\n" in r.stdout and "\x1b" not in r.stdout


# --- money-aware failures --------------------------------------------------------------------

def test_a_tariff_named_like_another_tariffs_id_is_not_mistaken_for_it(
        run, sim, password_file):
    """Tariff names are the upstream's: one may be "1". The books refer to tariffs by id, and
    a service of tariff 1 is ordered and prolonged as tariff 1, not as the tariff named "1"."""
    from resellctl.sim.tariffs import _tariff

    sim.tariffs["31"] = _tariff(31, "1", "vds", {1: "3.00", 6: "15.00"},
                                (109, "disk", 10, "GB"))
    assert run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    tariffs = json.loads(run("tariffs", "list", "--json").stdout)
    assert {t["name"]: t["id"] for t in tariffs}["VDS-1"] == 1
    item, remote = order_active(run, sim, tariff="VDS-1")
    assert sim.items[remote].pricelist == "11" and sim.balance() == 95
    row = change(run, "prolong", item)
    assert row["status"] == "waiting", row
    assert sim.balance() == 90


def test_not_enough_money_fails_with_the_deficit_and_no_task(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    expiry = sim.items[remote].expiredate
    sim.set_balance("10.00")
    sent = len(sim.requests)
    r = run("services", "prolong", item, "--period", "12")
    assert r.exit_code == ERROR, r
    assert funcs(sim)[-2:] == ["vds.edit", "service.prolong"]
    assert len(sim.requests) == sent + 2  # not retried
    [row] = tsv(r.stdout)
    assert row["status"] == "failed" and row["task"] == ""
    assert ("Top up the selling account of module 'vds-up' by at least 40.00 EUR, then run: "
            f"resellctl ops start {row['runningoperation']}") in r.stderr
    failed = op(run, row["runningoperation"])
    assert failed["error_type"] == "balance"
    assert failed["errors"][0]["deficit"] == "40.00" and failed["errors"][0]["amount"] == "50.00"
    assert json.loads(run("tasks", "list", "--status", "open", "--json").stdout) == []
    assert sim.items[remote].expiredate == expiry and sim.balance() == 10

    listed = tsv(run("ops", "list", "--status", "failed").stdout)
    assert [o["id"] for o in listed] == [row["runningoperation"]]
    assert "not enough money" in listed[0]["reason"]
    assert "Insufficient funds: 50.00 EUR required" in listed[0]["reason"]


def test_checkevent_reruns_what_the_balance_covers_oldest_first(run, upstream):
    sim = upstream
    ops = failed_orders(run, sim, 3)
    r = run("checkevent", "--json")
    assert json.loads(r.stdout)[0]["rerun"] == 0  # nothing covered yet
    sim.topup("12.00")  # two orders' worth, not three
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "2 re-run for funds" in r.stdout
    assert [op(run, o)["status"] for o in ops] == ["waiting", "waiting", "failed"]
    assert sim.balance() == 2 and len(sim.items) == 2
    assert [op(run, o)["trycount"] for o in ops] == [2, 2, 1]
    # The next run opens them; the third still waits for funds.
    r = run("checkevent")
    assert "2 operations completed" in r.stdout
    assert [op(run, o)["status"] for o in ops] == ["done", "done", "failed"]
    sim.topup("3.00")
    run("checkevent")
    assert op(run, ops[2])["status"] == "waiting" and len(sim.items) == 3


def test_several_refused_for_funds_say_what_they_need_together(run, upstream):
    sim = upstream
    sim.set_balance("2.00")
    r = run("order", "VDS-1", "--quantity", "3")
    assert r.exit_code == ERROR, r
    assert r.stderr.count("by at least 3.00 EUR") == 3
    assert ("together these 3 operations need 15.00 EUR, the selling account has 2.00: top up "
            "by at least 13.00 EUR to run them all") in r.stderr


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
    assert r.exit_code == ERROR, r
    lines = r.stderr.splitlines()
    assert len(lines) == 5 and lines[-1] == "Error: 2 of 2 operation(s) failed", r
    assert "together these" not in r.stderr


def test_funds_rerun_keeps_the_queue_order(run, upstream):
    """A large old order is not starved by a newer cheap one: the queue stops at the first
    operation the balance does not cover."""
    sim = upstream
    sim.set_balance("0.00")
    big = json.loads(run("order", "VDS-2", "--period", "12", "--json").stdout)[0]
    small = json.loads(run("order", "VDS-1", "--period", "1", "--json").stdout)[0]
    sim.topup("10.00")  # covers the small one (5.00), not the big one (90.00)
    r = run("checkevent", "--json")
    assert json.loads(r.stdout)[0]["rerun"] == 0
    assert [op(run, o["runningoperation"])["status"] for o in (big, small)] == ["failed"] * 2
    assert sim.balance() == 10 and not sim.items
    sim.topup("90.00")
    r = run("checkevent", "--json")
    assert json.loads(r.stdout)[0]["rerun"] == 2
    assert [op(run, o["runningoperation"])["status"] for o in (big, small)] == ["waiting"] * 2
    assert sim.balance() == 5


def test_funds_rerun_passes_over_an_amount_that_is_not_a_number(run, upstream):
    """The amount is the upstream's text: "NaN" fails every comparison with the balance."""
    import sqlite3

    sim = upstream
    ops = failed_orders(run, sim, 2)
    with sqlite3.connect(run.db_path) as conn:
        conn.execute("UPDATE runningoperation SET amount = 'NaN' WHERE id = ?", (ops[0],))
    sim.topup("50.00")
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "1 re-run for funds" in r.stdout
    assert [op(run, o)["status"] for o in ops] == ["failed", "waiting"]


def test_funds_rerun_stops_once_the_upstream_does_not_answer(run, upstream):
    """Each re-run would wait out its own retries on a silent upstream, while the sync lock
    turns the next cron runs away: the first that gets no answer ends the queue."""
    sim = upstream
    ops = failed_orders(run, sim, 3)
    sim.topup("50.00")
    sim.fault("drop", func="vds.order.param", count=100)
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "1 re-run for funds" in r.stdout
    assert funcs(sim).count("vds.order.param") == 3 + 3  # the three refusals, one op's retries
    assert [op(run, o)["error_type"] for o in ops] == ["transient", "balance", "balance"]


def test_no_auto_rerun_leaves_them_to_ops_start(run, upstream, password_file):

    sim = upstream
    r = run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
            "--username", USERNAME, "--password-file", password_file, "--no-auto-rerun",
            "--replace")
    assert r.exit_code == SUCCESS, r
    ops = failed_orders(run, sim, 2)
    assert "or let `resellctl checkevent` re-run it" not in run("ops", "start", ops[0]).stderr
    sim.topup("50.00")
    r = run("checkevent")
    assert r.exit_code == SUCCESS and "re-run" not in r.stdout
    assert [op(run, o)["status"] for o in ops] == ["failed", "failed"]
    assert len(sim.items) == 0
    r = run("ops", "start", ops[1])
    assert r.exit_code == SUCCESS, r
    assert [op(run, o)["status"] for o in ops] == ["failed", "waiting"]
    assert [op(run, o)["trycount"] for o in ops] == [2, 2]


def test_ops_start_forces_a_try_while_funds_are_short(run, upstream):
    sim = upstream
    [op_id] = failed_orders(run, sim, 1)
    sim.set_balance("4.00")
    r = run("ops", "start", op_id)
    assert r.exit_code == ERROR, r
    assert "by at least 1.00 EUR" in r.stderr
    again = op(run, op_id)
    assert again["trycount"] == 2 and [e["deficit"] for e in again["errors"]] == ["5.00", "1.00"]
    assert [q["func"] for q in sim.requests].count("vds.order.param") == 2
    r = run("ops", "start", op_id, op_id)
    assert r.exit_code == ERROR


def test_dry_run_prints_the_request_and_errors_and_sends_nothing(run, upstream):

    sim = upstream
    item, remote = order_active(run, sim)
    sim.set_balance("1.00")
    r = run("services", "prolong", item, "--period", "3")
    op_id = tsv(r.stdout)[0]["runningoperation"]
    sent = list(sim.requests)
    r = run("ops", "start", op_id, "--dry-run")
    assert r.exit_code == SUCCESS, r
    assert sim.requests == sent
    text = r.stdout
    assert f"  POST {sim.server.url}\n" in text
    for line in ("func=service.prolong", f"elid={remote}", "period=3", "sok=ok", "out=json",
                 f"authinfo={USERNAME}:***"):
        assert f"\n  {line}\n" in text, line
    assert PASSWORD not in text + r.stderr
    assert "errors:" in text and "balance" in text and "Insufficient funds" in text
    shown = json.loads(run("ops", "start", op_id, "--dry-run", "--json").stdout)
    assert shown["request"]["form"]["authinfo"] == f"{USERNAME}:***"
    assert shown["request"]["form"]["func"] == "service.prolong"
    assert shown["errors"][0]["type"] == "balance"
    assert sim.requests == sent and op(run, op_id)["trycount"] == 1


def test_an_order_that_never_reached_the_upstream_can_be_closed(run, upstream):
    sim = upstream
    [op_id] = failed_orders(run, sim, 1)
    item = op(run, op_id)["item"]
    sent = len(sim.requests)
    r = run("services", "close", item, "--yes")
    assert r.exit_code == SUCCESS, r
    assert tsv(r.stdout) == [{"item": str(item), "runningoperation": str(op_id),
                              "status": "cancelled", "task": ""}]
    assert len(sim.requests) == sent
    assert show(run, item)["status"] == 4
    assert "closed before it was opened" in show(run, item)["history"][-1]["message"]
    assert run("ops", "list", "--status", "cancelled", "-q").stdout.split() == [str(op_id)]
    # Funds arrive: checkevent does not order the cancelled service after all.
    sim.topup("50.00")
    r = run("checkevent")
    assert r.exit_code == SUCCESS and "re-run" not in r.stdout
    assert len(sim.items) == 0
    r = run("ops", "start", op_id)
    assert r.exit_code == USAGE and "is cancelled" in r.stderr


def test_an_order_whose_answer_was_lost_cannot_be_closed_before_it_is_restarted(run, upstream):
    sim = upstream
    sim.fault("drop_after_commit", func="vds.order.param", count=3)
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    r = run("services", "close", created["item"])
    assert r.exit_code == USAGE
    assert f"Run `resellctl ops start {created['runningoperation']}` first" in r.stderr
    assert show(run, created["item"])["status"] == 1


def test_ops_start_stops_sending_once_the_upstream_does_not_answer(run, upstream):
    sim = upstream
    ops = failed_orders(run, sim, 3)
    sim.topup("50.00")
    sim.fault("500", func="vds.order.param", count=100)
    sent = len(sim.requests)
    r = run("ops", "start", *ops)
    assert r.exit_code == TEMPFAIL, r
    # The first operation waited out its retries (3 attempts); the other two were not sent.
    assert len(sim.requests) - sent == 3
    assert [row["status"] for row in tsv(r.stdout)] == ["failed"] * 3
    assert (f"operation(s) {ops[1]} to {ops[2]} not sent, as the upstream did not answer; once "
            f"it does: resellctl ops start {ops[1]} {ops[2]}") in r.stderr
    assert [op(run, o)["trycount"] for o in ops] == [2, 1, 1]
    sim.clear_faults()
    assert run("ops", "start", *ops).exit_code == SUCCESS
    assert len(sim.items) == 3


def test_a_prolongation_refused_for_funds_is_sent_though_the_upstream_moved_the_expiry(
        run, upstream):
    """A refusal means nothing went through: when the upstream extends the service on its own
    before the restart, that is not taken for our prolongation."""
    from resellctl.kinds import add_months

    sim = upstream
    item, remote = order_active(run, sim)
    sim.set_balance("0.00")
    r = run("services", "prolong", item)
    assert r.exit_code == ERROR, r
    op_id = tsv(r.stdout)[0]["runningoperation"]
    moved = add_months(sim.items[remote].expiredate, 1)
    sim.set_expiredate(remote, moved)  # a goodwill month, given upstream
    sim.topup("50.00")
    r = run("ops", "start", op_id)
    assert r.exit_code == SUCCESS, r
    assert tsv(r.stdout)[0]["status"] == "waiting"
    assert sim.items[remote].expiredate == add_months(moved, 1)
    assert sim.balance() == 45


def test_a_rerun_for_funds_that_fails_again_is_shown_even_in_quiet_mode(run, upstream):
    sim = upstream
    [op_id] = failed_orders(run, sim, 1)
    sim.topup("10.00")
    sim.fault("500", func="vds.order.param", count=10)
    r = run("checkevent", "-q")
    assert r.stdout == ""
    assert f"operation {op_id}, re-run for funds, failed again" in r.stderr
    assert op(run, op_id)["status"] == "failed"


@pytest.mark.slow
def test_funds_reruns_end_with_the_time_budget(run, upstream):
    """Twenty re-runs against an upstream answering each in a second would hold the sync lock
    for twenty seconds under a two-second budget; the rest wait for the next run."""
    sim = upstream
    ops = failed_orders(run, sim, 20)
    sim.topup("100.00")
    sim.fault("delay", func="vds.order.param", count=20, seconds=1)
    before = funcs(sim).count("vds.order.param")
    r = run("checkevent", "--time-budget", "2")
    assert r.exit_code == SUCCESS, r
    sent = funcs(sim).count("vds.order.param") - before
    assert 1 <= sent <= 3, sent
    assert "the time budget ended before operation" in r.stderr
    statuses = [op(run, o)["status"] for o in ops]
    assert statuses.count("waiting") == sent and statuses.count("failed") == 20 - sent
    sim.clear_faults()
    r = run("checkevent")
    assert r.exit_code == SUCCESS and f"{20 - sent} re-run for funds" in r.stdout, r


def test_retries_live_in_one_layer_and_say_how_many_there_were(run, upstream):
    """A change whose answer is lost is re-tried after reading the upstream's view: one read
    per try, never a loop of reads inside a loop of tries."""
    sim = upstream
    item, remote = order_active(run, sim)
    sent = len(sim.requests)
    sim.fault("drop", func="vds.*", count=100)  # every suspend and every read goes unanswered
    r = run("services", "suspend", item)
    assert r.exit_code == TEMPFAIL, r
    assert [q["func"] for q in sim.requests[sent:]] == ["vds.suspend", "vds.edit", "vds.edit"]
    assert "gave up after 3 attempts" in r.stderr  # RESELLCTL_RETRY_ATTEMPTS

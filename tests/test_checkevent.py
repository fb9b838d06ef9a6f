"""`checkevent` as cron and an admin see it: bounded runs, problems kept and listed, the summary
in its three forms, the balance watch, replay after a restored backup, upstream failures."""

import json
import shutil
import sqlite3

import pytest

from helpers import (ERROR, SUCCESS, TEMPFAIL, USERNAME, add_waiting, adopt, books, checkevent,
                     elids_sent, op, order_active, query, raw_event, resellctl_env, show, tsv)
from resellctl.bmdoc import scalar
from resellctl.store import now


def history_count(db_path):
    return query(db_path, "SELECT count(*) FROM itemhistory WHERE source = 'event'")[0][0]


def position(db_path, module="vds-up"):
    return query(db_path, "SELECT event_cursor, event_skip FROM processingmodule WHERE name = ?",
                 (module,))[0]


@pytest.fixture
def seeded(run, upstream):
    """``seeded(services, events)``: that backlog of setparam events upstream, the services in
    the store; the id of the last event."""
    def seed(services, events):
        adopt(run.db_path, upstream.seed(services, events))
        return upstream.next_event_id() - 1
    return seed


# --- bounded runs -----------------------------------------------------------------------------

@pytest.mark.slow
def test_max_events_leaves_the_rest_to_the_next_run(run, upstream, seeded):
    last = seeded(50, 2500)
    r = run("checkevent", "--max-events", "1000")
    assert r.exit_code == SUCCESS, r
    assert r.stdout == ("vds-up: 1000 applied, 0 skipped (already applied), 0 unknown, "
                        "0 rejected, 0 operations completed; more events wait for the next run\n")
    assert history_count(run.db_path) == 1000
    first = checkevent(run, "--max-events", "1200")
    assert (first["applied"], first["more"]) == (1200, True)
    rest = checkevent(run, "--max-events", "1200")
    assert (rest["applied"], rest["more"], rest["cursor"]) == (300, False, last)
    assert history_count(run.db_path) == 2500
    r = run("checkevent")
    assert "0 applied" in r.stdout and "more events wait" not in r.stdout


@pytest.mark.slow
def test_the_time_budget_stops_fetching_and_the_next_run_takes_the_rest(run, upstream, seeded):
    last = seeded(50, 2500)
    sent = len(upstream.requests)
    # The first page comes within the budget; the second would come long after it, and is
    # given up when the budget ends: no third page is asked for, nor the balance.
    upstream.fault("delay", func="item.event.list", seconds=1)
    upstream.fault("delay", func="item.event.list", seconds=5)
    first = checkevent(run, "--time-budget", "2.5")
    assert (first["applied"], first["more"], first["error"]) == (1000, True, None)
    assert [q["params"]["after"] for q in upstream.requests[sent:]
            if q["func"] == "item.event.list"] == ["0", str(first["cursor"])]
    assert upstream.requests[-1]["func"] == "item.event.list"
    rest = checkevent(run)
    assert (rest["applied"], rest["more"], rest["cursor"]) == (1500, False, last)
    assert history_count(run.db_path) == 2500


@pytest.mark.slow
def test_the_time_budget_ends_the_retries_of_an_upstream_that_keeps_failing(run, upstream,
                                                                            monkeypatch):
    """Settings that allow retries for seconds more: the budget stops them all the same."""
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "1000")
    monkeypatch.setenv("RESELLCTL_RETRY_MAX_SECONDS", "4")
    monkeypatch.setenv("RESELLCTL_RETRY_WAIT", "0.01")
    sent = len(upstream.requests)
    upstream.fault("delay", func="item.event.list", seconds=1.1)
    upstream.fault("500", func="*", count=100_000)
    r = run("checkevent", "--time-budget", "1")
    assert r.exit_code == TEMPFAIL, r
    # One slow answer spends the budget; after it, one attempt per call, no retries.
    calls = [q["func"] for q in upstream.requests[sent:]]
    assert calls.count("item.event.list") == 1, calls
    assert len(calls) <= 3, calls


# --- problems are kept, counted and listed; the feed moves on ---------------------------------

PROBLEMS = [
    # (how the record is spoilt, outcome, the reason)
    (dict(item=scalar("9999"), remoteid=scalar("777")), "unknown",
     "no service with upstream item 9999 or remoteid 777"),
    (dict(type=scalar("teleport")), "rejected", "unknown event type 'teleport'"),
    (dict(id=None), "rejected", "the event has no id (read after event 107)"),
    (dict(id=scalar("12a")), "rejected",
     "the event's id '12a' is not a whole number from 1 to 9223372036854775807 "
     "(read after event 109)"),
    (dict(type=scalar("suspend"), status=scalar("three")), "rejected",
     "status 'three' is not an item status code"),
    (dict(status=[scalar("2")]), "rejected", "field 'status': expected a scalar, got list"),
    (dict(param="note=x"), "rejected", "field 'param': expected a list, got str"),
    (dict(param=[{"$name": ["note"], "$": "x"}]), "rejected",
     "field 'param': expected a list of named values"),
    (dict(type=scalar("prolong"), param=None, expiredate=scalar("soon")), "rejected",
     "expiredate 'soon' is not a date"),
    (dict(type=None), "rejected", "the event has no type"),
]


def test_unknown_and_malformed_events_are_kept_counted_and_listed(run, upstream, seeded):
    sim = upstream
    seeded(3, 3)
    records = []
    for spoil, _, _ in PROBLEMS:
        records.append(raw_event(sim, **spoil))
        sim.inject_event(records[-1])
        sim.setparam("4202", note="after-a-problem")
    last_id = sim.next_event_id() - 1
    sim.inject_event("not an object")
    records.append(raw_event(sim, id=None, type=scalar("open")))
    sim.inject_event(records[-1])  # the feed's last record

    result = checkevent(run)
    assert result["unknown"] == 1 and result["rejected"] == len(PROBLEMS) - 1 + 2
    assert result["applied"] == 3 + len(PROBLEMS) and result["cursor"] == last_id
    shown = run("services", "show", "2", "--json")
    assert json.loads(shown.stdout)["params"]["note"] == "after-a-problem"

    r = run("events", "list", "--problem", "--json")
    problems = json.loads(r.stdout)
    assert len(problems) == len(PROBLEMS) + 2
    # Each reason, and the record as it came (for the upstream's support).
    assert sorted(((p["outcome"], p["reason"], p["raw"]) for p in problems),
                  key=repr) == sorted(
        [(outcome, reason, raw) for (_, outcome, reason), raw in zip(PROBLEMS, records)]
        + [("rejected", "an event must be an object, not str (read after event 123)",
            "not an object"),
           ("rejected", "the event has no id (read after event 123)", records[-1])], key=repr)
    unknown = [p for p in problems if p["outcome"] == "unknown"]
    assert [(p["type"], p["upstream_item"], p["event_id"]) for p in unknown] == [
        ("setparam", "9999", 104)]
    tsv_rows = tsv(run("events", "list", "--problem").stdout)
    assert [row["outcome"] for row in tsv_rows] == [p["outcome"] for p in problems]
    assert run("events", "list", "--problem", "-q").stdout.split() == [
        str(p["id"]) for p in problems]

    # Nothing is read, logged or counted twice, the record without an id at the end included.
    again = checkevent(run)
    assert again["unknown"] == again["rejected"] == again["applied"] == 0
    assert len(json.loads(run("events", "list", "--problem", "--json").stdout)) == len(problems)
    sim.setparam("4203", note="later")
    later = checkevent(run)
    assert (later["applied"], later["rejected"], later["skipped"]) == (1, 0, 0)
    assert position(run.db_path) == (sim.next_event_id() - 1, 0)


def test_records_without_an_id_across_pages_never_wedge_the_feed(run, upstream, seeded):
    sim = upstream
    seeded(2, 2)
    for _ in range(5):
        sim.inject_event(raw_event(sim, id=None))
    sim.setparam("4201", note="past-them")
    runs = []
    while True:
        result = checkevent(run, "--max-events", "2")
        runs.append((result["applied"], result["rejected"], result["skipped"]))
        if not result["more"]:
            break
        assert len(runs) < 10
    # Runs of two: 2 events, the five records without an id, then the last event.
    assert runs == [(2, 0, 0), (0, 2, 0), (0, 2, 0), (1, 1, 0)]
    assert position(run.db_path) == (sim.next_event_id() - 1, 0)
    problems = json.loads(run("events", "list", "--problem", "--json").stdout)
    assert len(problems) == 5
    assert all("read after event 102" in p["reason"] for p in problems)
    assert checkevent(run)["rejected"] == 0


def test_a_problem_record_read_again_by_a_replay_is_not_logged_twice(run, upstream, seeded):
    sim = upstream
    seeded(1, 1)
    sim.inject_event(raw_event(sim, type=scalar("teleport")))
    sim.inject_event(raw_event(sim, id=None))
    sim.setparam("4201", note="last")
    assert checkevent(run)["rejected"] == 2
    replay = checkevent(run, "--from", "101")
    assert (replay["applied"], replay["rejected"], replay["skipped"]) == (0, 0, 4)
    assert len(json.loads(run("events", "list", "--problem", "--json").stdout)) == 2


def test_a_tariff_of_another_item_type_is_never_applied_nor_its_resources(run, upstream):
    """An event that would make a vds a hosting in the books: the service keeps its tariff and
    resources, and its history says why."""
    sim = upstream
    item, remote = order_active(run, sim)
    before = show(run, item)
    sim.inject_event(raw_event(sim, type=scalar("changepricelist"), item=scalar(remote),
                               remoteid=None, param=None, pricelist=scalar("21"),
                               addon=[{"$name": "quota", "$": "5"}]))
    assert checkevent(run)["applied"] == 1
    after = show(run, item)
    assert (after["pricelist"], after["addons"]) == (before["pricelist"], before["addons"])
    assert after["history"][-1]["message"].endswith(
        "tariff Hosting-Start sells vhost, not vds: not applied")


def test_a_prolong_event_that_moves_the_expiry_back_completes_no_renewal(run, upstream,
                                                                         monkeypatch):
    """An upstream that takes a renewal and applies it later, and meanwhile moves the expiry
    back (its event a prolong too): the books follow the expiry; the renewal the customer paid
    for waits until an expiry past the one read before it was sent."""
    from resellctl.sim import Simulator

    sim = upstream
    item, remote = order_active(run, sim)
    before = show(run, item)["expiredate"]
    monkeypatch.setattr(Simulator, "prolong", lambda self, item_id, period: before)
    r = run("services", "prolong", item, "--period", "1")
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    sim.set_expiredate(remote, "2026-01-15")
    assert checkevent(run)["completed"] == 0
    assert show(run, item)["expiredate"] == "2026-01-15"
    assert op(run, row["runningoperation"])["status"] == "waiting"
    sim.set_expiredate(remote, "2099-01-31")
    assert checkevent(run)["completed"] == 1
    assert op(run, row["runningoperation"])["status"] == "done"


@pytest.mark.slow
def test_an_openfail_applied_while_its_order_was_under_way_links_nothing(run, upstream,
                                                                         monkeypatch):
    """The upstream takes the order, fails to open it and refunds it, and cron's checkevent
    applies that openfail before the order's answer is recorded: the answer links nothing
    (the item is gone), and the order is sent again by `ops start`, not left waiting for an
    open that never comes."""
    import subprocess
    import sys

    from resellctl.upstream.calls import EventsClient

    real = EventsClient.order

    def order_then_openfail(self, *args, **kwargs):
        made = real(self, *args, **kwargs)
        cron = subprocess.run([sys.executable, "-m", "resellctl", "checkevent", "-q"],
                              env=resellctl_env(run.db_path), capture_output=True, text=True,
                              timeout=60)
        assert cron.returncode == SUCCESS, cron
        return made

    monkeypatch.setattr(EventsClient, "order", order_then_openfail)
    upstream.fail_next_open("no capacity")
    r = run("order", "VDS-1", "--json")
    [row] = json.loads(r.stdout)
    assert (r.exit_code, row["status"]) == (ERROR, "failed"), r
    assert "refunded" in r.stderr and f"resellctl ops start {row['runningoperation']}" in r.stderr
    assert show(run, row["item"])["upstream_id"] is None
    monkeypatch.setattr(EventsClient, "order", real)
    r = run("ops", "start", row["runningoperation"])
    assert r.exit_code == SUCCESS, r
    assert checkevent(run)["completed"] == 1
    assert show(run, row["item"])["status"] == 2
    assert len(upstream.items) == 2  # the refunded one, and the one made again


# --- the summary for people, for cron and for programs ----------------------------------------

def test_quiet_prints_nothing_when_all_is_well_and_only_problems_otherwise(run, upstream,
                                                                           seeded):
    sim = upstream
    seeded(5, 20)
    r = run("checkevent", "-q")
    assert (r.exit_code, r.stdout, r.stderr) == (SUCCESS, "", "")
    assert history_count(run.db_path) == 20
    sim.inject_event(raw_event(sim, item=scalar("9999")))
    r = run("checkevent", "-q")
    assert r.exit_code == SUCCESS
    assert r.stdout == ("vds-up: 0 applied, 0 skipped (already applied), 1 unknown, 0 rejected,"
                        " 0 operations completed\n")
    assert r.stderr == ("vds-up: 1 event(s) could not be applied; see `resellctl events list "
                        "--problem`\n")
    r = run("checkevent", "-q")
    assert (r.stdout, r.stderr) == ("", "")


def test_json_summary(run, upstream, seeded):
    seeded(2, 4)
    add_waiting(run.db_path, [1], "setparam")
    r = run("checkevent", "--json")
    assert r.exit_code == SUCCESS and r.stderr == ""
    [result] = json.loads(r.stdout)
    assert result == {
        "module": "vds-up", "applied": 4, "skipped": 0, "unknown": 0, "rejected": 0,
        "completed": 1, "rerun": 0, "cursor": 104, "more": False, "balance": "100.00",
        "currency": "EUR", "min_balance": "20", "low_balance": False, "error": None,
        "error_kind": None, "warnings": [], "foreign": 0, "missing": 0, "new_missing": [],
        "polled": False, "outcome": "ok", "retried": 0, "stuck": 0}


@pytest.mark.slow
@pytest.mark.parametrize("stderr_isatty, events, shown", [
    (True, 6000, True), (False, 6000, False), (True, 300, False)])
def test_a_progress_bar_only_on_a_terminal_and_for_a_large_backlog(run, upstream, seeded,
                                                                   stderr_isatty, events, shown):
    seeded(100, events)
    result = run("checkevent", stderr_tty=stderr_isatty)
    assert result.exit_code == SUCCESS, result
    assert result.stdout.startswith(f"vds-up: {events} applied")
    assert ("vds-up: 6000 events" in result.stderr) is shown
    assert (result.stderr == "") is not shown


@pytest.mark.slow
def test_no_progress_bar_when_quiet_or_json_even_on_a_terminal(run, upstream, seeded):
    seeded(100, 6000)
    quiet = run("checkevent", "-q", stderr_tty=True)
    assert (quiet.exit_code, quiet.stderr) == (SUCCESS, "")
    adopt(run.db_path, upstream.seed(10, 6000, first_remoteid=101))
    result = run("checkevent", "--json", stderr_tty=True)
    assert (result.exit_code, result.stderr) == (SUCCESS, "")


# --- the balance watch ------------------------------------------------------------------------

def test_a_balance_below_the_minimum_is_warned_and_modules_list_shows_it(run, upstream):
    sim = upstream
    modules = json.loads(run("modules", "list", "--json").stdout)
    assert modules[0]["balance"] is None and modules[0]["balance_date"] is None
    r = run("checkevent")
    assert r.exit_code == SUCCESS and r.stderr == ""
    [module] = [m for m in json.loads(run("modules", "list", "--json").stdout)
                if m["name"] == "vds-up"]
    assert (module["balance"], module["currency"]) == ("100.00", "EUR")
    assert module["balance_date"].startswith(now()[:10])

    sim.set_balance("12.50")
    for args in ((), ("-q",)):
        r = run("checkevent", *args)
        assert r.exit_code == SUCCESS
        assert r.stderr == ("warning: module vds-up: balance 12.50 EUR is below the minimum 20; "
                            "top up the selling account\n")
    assert checkevent(run)["low_balance"] is True
    row = tsv(run("modules", "list").stdout)[0]
    assert (row["name"], row["balance"], row["min_balance"]) == ("vds-up", "12.50", "20")
    assert row["balance_date"]

    sim.topup("10")
    r = run("checkevent", "-q")
    assert (r.exit_code, r.stdout, r.stderr) == (SUCCESS, "", "")
    assert tsv(run("modules", "list").stdout)[0]["balance"] == "22.50"


# --- replay after restoring a backup ----------------------------------------------------------

@pytest.mark.slow
def test_from_after_restoring_a_backup_applies_only_what_is_missing(run, upstream, seeded,
                                                                    tmp_path):
    sim = upstream
    last = seeded(100, 3000)
    add_waiting(run.db_path, [7], "setparam")
    add_waiting(run.db_path, [100], "suspend")
    sim.suspend("4300", msg="abuse")  # service 100's item: after the backup was taken
    first = checkevent(run, "--max-events", "1000")
    assert first["cursor"] == 1100 and first["completed"] == 1
    backup = str(tmp_path / "backup.db")
    shutil.copy(run.db_path, backup)

    rest = checkevent(run)
    assert rest["applied"] == 2001 and rest["completed"] == 1
    whole = books(run.db_path)
    # The books die; last night's copy comes back. The upstream still has the events.
    shutil.copy(backup, run.db_path)
    replay = checkevent(run, "--from", "601")
    assert (replay["skipped"], replay["applied"], replay["completed"]) == (500, 2001, 1)
    assert replay["cursor"] == last + 1
    assert books(run.db_path) == whole
    assert history_count(run.db_path) == 3001
    again = checkevent(run, "--from", "101")
    assert (again["skipped"], again["applied"]) == (3001, 0)
    assert books(run.db_path) == whole


def test_from_beyond_the_position_skips_nothing(run, upstream, seeded):
    seeded(10, 300)
    assert checkevent(run, "--max-events", "100")["cursor"] == 200
    result = checkevent(run, "--from", "351")
    assert (result["applied"], result["skipped"]) == (200, 0)
    assert history_count(run.db_path) == 300


def test_events_are_acknowledged_only_once_old_enough(run, upstream, seeded):
    sim = upstream
    seeded(10, 300)
    run("checkevent")
    run("checkevent")

    def acks():
        return [q["params"]["upto"] for q in sim.requests if q["func"] == "item.event.ack"]
    assert acks() == [] and len(sim.events()) == 300  # kept for a restored backup
    # A week later, the cursor marked then is acknowledged, and the present one marked.
    store = sqlite3.connect(run.db_path)
    with store:
        store.execute("UPDATE processingmodule SET ack_mark_date = '2000-01-01T00:00:00Z'")
    store.close()
    sim.setparam("4201", note="new")
    run("checkevent")
    assert acks() == ["400"] and len(sim.events()) == 1
    run("checkevent")
    assert acks() == ["400"]
    run("checkevent", "--ack-after", "0")
    assert acks() == ["400", "401"] and sim.events() == []
    run("checkevent", "--ack-after", "0")
    assert acks() == ["400", "401"]


# --- upstream failures ------------------------------------------------------------------------

def test_an_unreachable_upstream_exits_75_with_one_line(run, upstream):
    upstream.server.close()
    r = run("checkevent")
    assert r.exit_code == TEMPFAIL, r
    assert r.stdout == ""
    [line] = r.stderr.splitlines()
    assert line.startswith("error: module vds-up: item.event.list on 127.0.0.1:")
    assert "temporary failure" in line
    r = run("checkevent", "-q")
    assert r.exit_code == TEMPFAIL and len(r.stderr.splitlines()) == 1


def test_bad_credentials_exit_1_and_say_to_check_them(run, upstream, tmp_path):
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    r = run("modules", "add", "vds-up", "--replace", "--type", "billmanager",
            "--url", upstream.server.url, "--username", USERNAME, "--password-file", wrong)
    assert r.exit_code == SUCCESS, r
    r = run("checkevent")
    assert r.exit_code == ERROR, r
    [line] = r.stderr.splitlines()
    assert line.startswith("error: module vds-up: ") and "login refused" in line
    assert "check the module's username and password" in line
    assert "not-the-password" not in r.stderr + r.stdout


def test_one_failing_module_does_not_stop_the_others(run, upstream, seeded, tmp_path):
    sim = upstream
    seeded(5, 50)
    sim.add_account("other@example.net", "other-password", "40.00")
    other_pw = tmp_path / "other.pw"
    other_pw.write_text("wrong-password\n")
    # Its dialect given: asked, the upstream would have refused the password at once.
    r = run("modules", "add", "a-broken", "--type", "billmanager", "--url", sim.server.url,
            "--username", "other@example.net", "--password-file", other_pw, "--api", "events")
    assert r.exit_code == SUCCESS, r
    r = run("checkevent")
    assert r.exit_code == ERROR, r
    assert r.stdout.startswith("vds-up: 50 applied")
    assert "a-broken" not in r.stdout
    [line] = r.stderr.splitlines()
    assert line.startswith("error: module a-broken: ")
    assert history_count(run.db_path) == 50
    [result] = [s for s in json.loads(run("checkevent", "--json").stdout)
                if s["module"] == "a-broken"]
    assert result["error_kind"] == "auth"


def test_dry_run_shows_the_events_that_wait_and_applies_and_acknowledges_nothing(run, upstream):
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    upstream.open_pending()
    remote = json.loads(run("services", "show", created["item"], "--json").stdout)["upstream_id"]
    upstream.inject_event({"id": {"$": "999"}})  # malformed: shown rejected, not logged
    sent = len(upstream.requests)
    r = run("checkevent", "--dry-run", "--json")
    assert r.exit_code == SUCCESS, r
    [opened, rejected] = json.loads(r.stdout)
    assert (opened["module"], opened["item"], opened["upstream_item"], opened["type"],
            opened["event"], opened["status"]) == (
        "vds-up", created["item"], remote, "open", 101, 2)
    assert rejected["rejected"] == "the event has no type" and rejected["item"] is None
    assert "2 change(s) would be applied; nothing was changed (--dry-run)" in r.stderr
    funcs = [q["func"] for q in upstream.requests[sent:]]
    assert set(funcs) == {"item.event.list"}  # no ack, no balance, no re-run
    assert json.loads(run("events", "list", "--json").stdout) == []
    service = json.loads(run("services", "show", created["item"], "--json").stdout)
    assert service["status"] == 5
    r = run("checkevent")
    assert "1 applied" in r.stdout and "1 rejected" in r.stdout


def test_an_openfail_for_a_service_that_opened_leaves_it_linked(run, upstream):
    """An upstream that sends `openfail` for a service that is active (late, or wrong): the
    service keeps its upstream item, so closing it deletes that item upstream rather than
    closing it in the books alone and leaving it running, and charged, upstream."""
    item, remote = order_active(run, upstream)
    upstream.inject_event(raw_event(upstream, type=scalar("openfail"), item=scalar(remote),
                                    remoteid=None, param=None, msg=scalar("no capacity")))
    assert checkevent(run)["applied"] == 1
    shown = show(run, item)
    assert (shown["status"], shown["upstream_id"]) == (2, remote)
    assert shown["history"][-1]["message"] == (
        "openfail (event 102): opening failed upstream (no capacity): not applied, the "
        "service is active")
    r = run("services", "close", str(item), "--yes")
    assert r.exit_code == SUCCESS and tsv(r.stdout)[0]["status"] == "waiting", r
    assert elids_sent(upstream, "vds.delete") == [remote]

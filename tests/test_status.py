"""`resellctl status` as an administrator and a monitoring system meet it: one screen (or one
JSON object) saying whether all is well, from the books alone, with the exit status of a
monitoring plugin: 0 all well, 1 warning, 2 critical.

The books' times are moved back where a test needs something to have waited: the store is the
same as minutes or hours later, without the wait."""

import datetime
import json
import os
import sqlite3

import pytest

from helpers import (ERROR, SUCCESS, TEMPFAIL, USAGE, configured, digest, funcs, raw_event,
                     unanswered_orders)
from resellctl.bmdoc import scalar
from resellctl.health import MonitoringExit
from resellctl.store import now


def status(run, code):
    """`status --json`, checked to exit ``code`` (a MonitoringExit) as plain `status` does."""
    r = run("status", "--json")
    assert r.exit_code == code, r
    report = json.loads(r.stdout)
    assert report["exit_status"] == code
    assert run("status").exit_code == code
    return report


def messages(report):
    return [(p["level"], p["module"], p["message"]) for p in report["problems"]]


def moved_back(db_path, table, column, where="1", **ago):
    """Move ``column`` of the rows of ``table`` that ``where`` picks back by ``ago``."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}",
                     (now(datetime.timedelta(**ago)),))
    conn.close()


def test_a_store_without_a_billmanager_module_is_a_warning(run):
    report = status(run, MonitoringExit.WARNING)
    assert messages(report) == [("warning", None, "no billmanager module yet: no service is "
                                 "kept in step with an upstream (resellctl modules add NAME "
                                 "--type billmanager ...)")]
    assert run("modules", "add", "manual", "--type", "manual").exit_code == SUCCESS
    r = run("status")
    assert r.stdout.startswith("WARNING: no billmanager module yet")


def test_all_is_well_after_a_sync(run, upstream):
    assert run("checkevent").exit_code == SUCCESS
    r = run("status")
    assert r.exit_code == MonitoringExit.OK, r
    lines = r.stdout.splitlines()
    assert lines[0] == "OK: all is well"
    assert lines[1] == f"store: {run.db_path} (from the RESELLCTL_DB variable)"
    assert lines[2] == "module vds-up (events)"
    assert lines[3].startswith(f"  last sync: {now()[:10]}") and ", ok in " in lines[3]
    assert lines[4].startswith("  balance:   100.00 EUR, minimum 20, read ")
    assert "problems:" not in r.stdout
    report = status(run, MonitoringExit.OK)
    assert (report["status"], report["problems"]) == ("ok", [])
    assert report["store"] == run.db_path
    assert report["store_source"] == "from the RESELLCTL_DB variable"
    [module] = report["modules"]
    assert module["last_run"]["outcome"] == "ok"
    assert module["last_ok"] == module["last_run"]["started"]
    assert (module["balance"], module["low_balance"]) == ("100.00", False)


def test_no_successful_sync_for_three_ticks_is_critical(run, upstream):
    assert run("checkevent").exit_code == SUCCESS
    moved_back(run.db_path, "syncrun", "started", minutes=11)
    assert messages(status(run, MonitoringExit.WARNING)) == [
        ("warning", "vds-up", "no successful sync for 11 minutes (warning after 10 minutes)")]
    moved_back(run.db_path, "syncrun", "started", minutes=16)
    r = run("status")
    assert r.exit_code == MonitoringExit.CRITICAL, r
    assert r.stdout.splitlines()[0] == ("CRITICAL: module vds-up: no successful sync for 16 "
                                        "minutes (critical after 15 minutes)")


def test_a_module_never_synced_counts_from_when_it_was_added(run, upstream):
    assert status(run, MonitoringExit.OK)["modules"][0]["last_run"] is None
    moved_back(run.db_path, "processingmodule", "cdate", minutes=20)
    assert messages(status(run, MonitoringExit.CRITICAL)) == [
        ("critical", "vds-up", "never synced since it was added 20 minutes ago (critical after "
         "15 minutes); checkevent has never run for it: is it in cron? (crontab.example)")]


def test_a_last_sync_dated_after_now_is_a_warning_not_all_is_well(run, upstream):
    """Synced while the clock ran a day ahead, then nothing: how long checkevent has been
    silent cannot be told, and is not told as all well."""
    assert run("checkevent").exit_code == SUCCESS
    moved_back(run.db_path, "syncrun", "started", hours=-25)
    assert messages(status(run, MonitoringExit.WARNING)) == [
        ("warning", "vds-up", "its last successful sync is dated 25 hours ahead of the clock: "
         "has the clock been put back? How long it has gone unsynced cannot be told until "
         "checkevent syncs it again")]
    assert "(25 hours ahead of the clock), ok in " in run("status").stdout
    assert run("checkevent").exit_code == SUCCESS  # a run at the present time
    assert messages(status(run, MonitoringExit.OK)) == []


def test_a_failed_sync_is_a_warning_with_its_error_and_critical_once_it_lasts(run, upstream):
    sim = upstream
    assert run("checkevent").exit_code == SUCCESS
    sim.fault("500", func="item.event.list", count=1000)
    assert run("checkevent", "-q").exit_code == TEMPFAIL
    [(level, module, message)] = messages(status(run, MonitoringExit.WARNING))
    assert (level, module) == ("warning", "vds-up")
    assert message.startswith("its last sync, 0 minutes ago, failed: item.event.list on ")
    assert "HTTP 500" in message
    moved_back(run.db_path, "syncrun", "started", minutes=16)
    [(level, _, message)] = messages(status(run, MonitoringExit.CRITICAL))
    assert message.startswith("no successful sync for 16 minutes (critical after 15 minutes); "
                              "its last run, 16 minutes ago, failed: item.event.list on ")
    report = status(run, MonitoringExit.CRITICAL)
    assert report["modules"][0]["last_run"]["error_kind"] == "transient"


def test_the_thresholds_are_the_configuration_files(run, upstream, tmp_path, monkeypatch):
    assert run("checkevent").exit_code == SUCCESS
    moved_back(run.db_path, "syncrun", "started", minutes=16)
    configured(tmp_path, monkeypatch, "[status]\nsync_warning_minutes = 30\n"
                                      "sync_critical_minutes = 60\n")
    report = status(run, MonitoringExit.OK)
    assert report["thresholds"]["sync_critical_minutes"] == 60


@pytest.mark.parametrize("text, says", [
    ("[status]\nsync_critical_minutes = 0\n",
     ", line 2: status.sync_critical_minutes must be more than 0 and at most 100000, not 0"),
    ("[status]\n\nwaiting_warning_hours = 'a day'\n",
     ", line 3: status.waiting_warning_hours must be a number, not 'a day'"),
    ("[status]\nnew_warning_minutes = nan\n",
     ", line 2: status.new_warning_minutes must be more than 0 and at most 100000, not nan"),
    ("[status]\nsync_critical = 15\n", ", line 2: unknown key 'status.sync_critical'"),
])
def test_a_bad_threshold_is_an_error_naming_the_file_and_line(run, tmp_path, monkeypatch, text,
                                                              says):
    path = configured(tmp_path, monkeypatch, text)
    r = run("status")
    assert r.exit_code == USAGE, r
    assert r.stdout == "" and r.stderr.splitlines()[0] == f"Error: {path}{says}"


def test_what_waits_too_long_is_a_warning(run, upstream):
    sim = upstream
    db = run.db_path
    sim.set_balance("15.00")
    assert run("order", "VDS-1", "--quantity", "3").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS  # services 1 to 3 active
    # An event that could not be applied, an order failed for want of funds, and two more of
    # which the first got no answer and the second was never sent.
    sim.inject_event(raw_event(sim, item=scalar("9999"), remoteid=scalar("777")))
    assert run("order", "VDS-1").exit_code == ERROR
    unanswered_orders(run, sim, 2)
    assert run("checkevent").exit_code == SUCCESS
    moved_back(db, "runningoperation", "mdate", "id = 6", minutes=16)
    # A task for staff open for a day, an operation waiting upstream for a day.
    assert run("set-module", "1", "manual").exit_code == SUCCESS
    assert run("services", "suspend", "1").exit_code == SUCCESS
    moved_back(db, "task", "opendate", "runningoperation = 7", hours=25)
    assert run("services", "suspend", "2").exit_code == SUCCESS
    moved_back(db, "runningoperation", "mdate", "id = 8", hours=25)
    # A service polling found missing upstream.
    moved_back(db, "item", "missing", "id = 3", minutes=1)
    report = status(run, MonitoringExit.WARNING)
    assert messages(report) == [
        ("warning", "vds-up", "balance 0.00 EUR is below its minimum 20 (read 0 minutes ago): "
         "top up the selling account"),
        ("warning", None, "2 operation(s) failed, the oldest 4: see `resellctl ops list "
         "--status failed`"),
        ("warning", None, "1 operation(s) not sent for over 15 minutes, the oldest 6: see "
         "`resellctl ops list --status new`"),
        ("warning", None, "1 operation(s) waiting upstream for over 24 hours, the oldest 8: "
         "their change has not come back; see `resellctl ops show 8`"),
        ("warning", None, "1 task(s) for staff open for over 24 hours, the oldest 4: see "
         "`resellctl tasks list --status open`"),
        ("warning", None, "1 event(s) could not be applied in the last 24 hours (1 in all): see "
         "`resellctl events list --problem`"),
        ("warning", None, "1 service(s) missing upstream: their item is not there any more; see "
         "`resellctl services show 3`")]
    # The manual module's waiting operation is its task's, counted there.
    assert (report["operations"], report["tasks"], report["events"], report["services"]) == (
        {"failed": 2, "new": 1, "new_late": 1, "waiting": 1, "waiting_late": 1},
        {"open": 1, "open_late": 1}, {"problem": 1, "problem_recent": 1}, {"missing": 1})
    r = run("status")
    assert r.stdout.splitlines()[0] == (
        "WARNING: module vds-up: balance 0.00 EUR is below its minimum 20 (read 0 minutes ago): "
        "top up the selling account (and 6 more problems)")
    assert "\nproblems:\n  warning: module vds-up: balance 0.00 EUR" in r.stdout
    # Old problem events are history, no longer a warning.
    moved_back(db, "eventlog", "received", hours=25)
    assert status(run, MonitoringExit.WARNING)["events"] == {"problem": 1, "problem_recent": 0}


def test_status_asks_no_upstream_and_writes_nothing(run, upstream):
    sim = upstream
    assert run("checkevent").exit_code == SUCCESS
    asked = len(sim.requests)
    files = {suffix: digest(run.db_path + suffix) for suffix in ("", "-wal")
             if os.path.exists(run.db_path + suffix)}
    sim.server.close()
    assert run("status").exit_code == MonitoringExit.OK
    assert len(sim.requests) == asked and "item.event.list" not in funcs(sim)[asked:]
    assert files == {suffix: digest(run.db_path + suffix) for suffix in files}


def test_a_terminal_shows_local_times(run, upstream, zone):
    zone("MSK-3")
    assert run("checkevent").exit_code == SUCCESS
    r = run("status", tty=True)
    [line] = [line for line in r.stdout.splitlines() if line.startswith("  last sync: ")]
    assert " MSK (0 minutes ago)" in line and "Z (" not in line

"""What checkevent keeps about itself: a record of each run of each module (what cron did, failed
runs included), and the problems it has told, so that `checkevent -q` (cron's mail) tells a
problem when it appears and then at most once a day, not at every run."""

import datetime
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from helpers import SUCCESS, TEMPFAIL, USERNAME, adopt, aged, failed_orders, query, resellctl_env
from resellctl import runlog
from resellctl.store import now


def runs(db_path):
    return [dict(zip(("module", "outcome", "applied", "completed", "error", "error_kind",
                      "started", "seconds"), row)) for row in query(
        db_path, "SELECT processingmodule.name, outcome, applied, completed, error, error_kind, "
                 "started, seconds FROM syncrun JOIN processingmodule ON processingmodule.id = "
                 "syncrun.processingmodule ORDER BY syncrun.id")]


def told_a_day_ago(db_path):
    """Move every notice's telling back by a day: as the store is a day later."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE notice SET told = ? WHERE told IS NOT NULL",
                     (now(datetime.timedelta(days=1, minutes=1)),))
    conn.close()


# --- the record of each run --------------------------------------------------------------------

def test_each_run_is_recorded_per_module_failed_ones_too(run, upstream):
    sim = upstream
    adopt(run.db_path, sim.seed(3, 7))
    assert run("checkevent").exit_code == SUCCESS
    [ok] = runs(run.db_path)
    assert (ok["module"], ok["outcome"], ok["applied"], ok["error"]) == ("vds-up", "ok", 7, None)
    assert ok["started"].startswith(now()[:10]) and ok["seconds"] >= 0
    sim.fault("500", func="item.event.list", count=100)
    assert run("checkevent", "-q").exit_code == TEMPFAIL
    failed = runs(run.db_path)[-1]
    assert (failed["outcome"], failed["error_kind"]) == ("error", "transient")
    assert "HTTP 500" in failed["error"]


def test_a_dry_run_records_nothing(run, upstream):
    adopt(run.db_path, upstream.seed(2, 4))
    assert run("checkevent", "--dry-run").exit_code == SUCCESS
    assert runs(run.db_path) == []
    assert query(run.db_path, "SELECT count(*) FROM notice") == [(0,)]


@pytest.mark.slow
def test_a_module_the_time_budget_left_out_is_recorded_as_skipped(run, upstream, tmp_path):
    sim = upstream
    sim.add_account("other@example.net", "other-password", "40.00")
    other_pw = tmp_path / "other.pw"
    other_pw.write_text("other-password\n")
    assert run("modules", "add", "z-other", "--type", "billmanager", "--url", sim.server.url,
               "--username", "other@example.net", "--password-file", other_pw).exit_code == SUCCESS
    # vds-up's second page of events comes after the budget: the next run reads it.
    adopt(run.db_path, sim.seed(50, 2500))
    sim.fault("delay", func="item.event.list", seconds=1)
    sim.fault("delay", func="item.event.list", seconds=5)
    r = run("checkevent", "--time-budget", "2.5")
    assert r.exit_code == SUCCESS, r
    assert "module z-other: not synced: the time budget ran out before its turn" in r.stderr
    assert [(r["module"], r["outcome"]) for r in runs(run.db_path)] == [
        ("vds-up", "ok"), ("z-other", "skipped")]


def test_runs_are_kept_a_week_per_module(run, upstream):
    assert run("checkevent").exit_code == SUCCESS
    with sqlite3.connect(run.db_path) as conn:
        conn.executemany("INSERT INTO syncrun (processingmodule, started, outcome) "
                         "VALUES (1, ?, 'ok')", [("2020-01-01T00:00:00Z",)] * runlog.KEEP_RUNS)
    conn.close()
    assert run("checkevent").exit_code == SUCCESS
    kept = runs(run.db_path)
    assert len(kept) == runlog.KEEP_RUNS == 2016
    assert kept[-1]["started"] != "2020-01-01T00:00:00Z"


def test_a_removed_module_leaves_no_runs_behind(run, upstream, password_file):
    sim = upstream
    assert run("modules", "add", "old-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    assert run("modules", "remove", "old-up", "--yes").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    assert {r["module"] for r in runs(run.db_path)} == {"vds-up"}
    assert query(run.db_path, "SELECT count(*) FROM syncrun WHERE processingmodule NOT IN "
                              "(SELECT id FROM processingmodule)") == [(0,)]


# --- a problem told once, then once a day ------------------------------------------------------

LOW = ("warning: module vds-up: balance 12.50 EUR is below the minimum 20; top up the selling "
       "account\n")


def test_a_low_balance_is_told_when_it_falls_then_once_a_day(run, upstream):
    sim = upstream
    sim.set_balance("12.50")
    assert run("checkevent", "-q").stderr == LOW
    for _ in range(3):
        r = run("checkevent", "-q")
        assert (r.exit_code, r.stdout, r.stderr) == (SUCCESS, "", "")
    # Run by hand, it shows everything, and takes nothing from what cron tells.
    assert run("checkevent").stderr == LOW
    assert run("checkevent", "-q").stderr == ""
    told_a_day_ago(run.db_path)
    assert run("checkevent", "-q").stderr == LOW
    assert run("checkevent", "-q").stderr == ""
    # Topped up, it is forgotten: falling low again is told again at once.
    sim.topup("10")
    assert run("checkevent", "-q").stderr == ""
    sim.set_balance("12.50")
    assert run("checkevent", "-q").stderr == LOW


def test_a_problem_told_while_the_clock_ran_ahead_is_told_again_once_it_is_put_back(
        run, upstream):
    """A telling dated a year ahead (the clock was wrong, then put right) does not keep a
    lasting problem quiet for that year."""
    upstream.set_balance("12.50")
    assert run("checkevent", "-q").stderr == LOW
    with sqlite3.connect(run.db_path) as conn:
        conn.execute("UPDATE notice SET told = ?", (now(-datetime.timedelta(days=365)),))
    conn.close()
    assert run("checkevent", "-q").stderr == LOW
    assert run("checkevent", "-q").stderr == ""


def test_an_upstream_down_is_told_once_and_its_return_told_again(run, upstream):
    sim = upstream
    sim.fault("500", func="item.event.list", count=1000)
    first = run("checkevent", "-q")
    assert first.exit_code == TEMPFAIL
    [line] = first.stderr.splitlines()
    assert line.startswith("error: module vds-up: item.event.list on 127.0.0.1:")
    again = run("checkevent", "-q")
    assert (again.exit_code, again.stdout, again.stderr) == (TEMPFAIL, "", "")
    sim.clear_faults()
    assert run("checkevent", "-q").stderr == ""
    sim.fault("500", func="item.event.list", count=1000)
    assert run("checkevent", "-q").stderr.splitlines() == [line]


def test_a_failed_operation_is_told_when_it_fails_and_each_new_one_too(run, upstream):
    sim = upstream
    [first] = failed_orders(run, sim, 1)
    sim.set_balance("100.00")  # no longer low, but the order waits for `ops start` by hand
    assert run("modules", "edit", "vds-up", "--no-auto-rerun").exit_code == SUCCESS
    r = run("checkevent", "-q")
    assert r.stderr.startswith(f"warning: module vds-up: 1 operation(s) failed ({first}): ")
    assert run("checkevent", "-q").stderr == ""
    [second] = failed_orders(run, sim, 1)
    sim.set_balance("100.00")
    r = run("checkevent", "-q")
    assert r.stderr.startswith(f"warning: module vds-up: 2 operation(s) failed ({first}, "
                               f"{second}): ")
    assert run("checkevent", "-q").stderr == ""
    assert run("ops", "start", first, second).exit_code == SUCCESS
    assert run("checkevent", "-q").stderr == ""
    assert query(run.db_path, "SELECT count(*) FROM notice") == [(0,)]


def test_unsent_operations_are_told_once_they_are_late(run, upstream):
    sim = upstream
    assert run("modules", "edit", "vds-up", "--no-auto-rerun").exit_code == SUCCESS
    sim.fault("drop", func="vds.order.param", count=100)
    r = run("order", "VDS-1", "--quantity", "3")
    sim.clear_faults()
    assert "Error: 1 of 3 operation(s) failed, 2 not sent" in r.stderr
    assert "and 2 not sent" not in run("checkevent", "-q").stderr  # they may be on their way
    aged(run.db_path, [2, 3], minutes=6)
    assert "1 operation(s) failed (1) and 2 not sent for 5 minutes or more (2, 3)" in run(
        "checkevent", "-q").stderr
    assert run("checkevent", "-q").stderr == ""


@pytest.mark.slow
def test_cron_mails_an_outage_once_not_at_every_run(run, upstream):
    """cron mails what a job prints: two runs as cron starts them, the second says nothing."""
    sim = upstream
    sim.fault("500", func="item.event.list", count=1000)
    env = {key: value for key, value in resellctl_env(run.db_path).items()
           if key in ("PATH", "RESELLCTL_DB", "RESELLCTL_CONFIG", "RESELLCTL_RETRY_WAIT", "HOME")}
    mails = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "resellctl", "checkevent", "-q"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                              cwd=os.path.dirname(run.db_path), timeout=120)
        assert done.returncode == TEMPFAIL, done
        mails.append(done.stdout + done.stderr)
    assert mails[0].startswith("error: module vds-up: item.event.list on ") and \
        len(mails[0].splitlines()) == 1
    assert mails[1] == ""
    status = json.loads(run("status", "--json").stdout)
    assert status["modules"][0]["last_run"]["outcome"] == "error"

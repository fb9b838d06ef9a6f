"""`checkevent` killed with SIGKILL at several points, then run again: the books end exactly as
after one uninterrupted run. Real processes over a backlog of tens of thousands of events."""

import collections
import datetime
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from helpers import (PASSWORD, TEMPFAIL, USERNAME, add_waiting, adopt, books, checkevent_process,
                     copy_store, finish, kill, new_store, wait_for)
from resellctl.sim import Simulator, serve

pytestmark = pytest.mark.slow

SERVICES = 3000
EVENTS = 24000
SUSPENDED = 40  # services the upstream suspends after the backlog, each with a waiting op


def cursor(db_path):
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute("SELECT event_cursor FROM processingmodule WHERE name = 'vds-up'"
                            ).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def backlog(tmp_path_factory):
    """A simulator holding a large backlog, a store whose services match it (a template to
    copy), and the books after one uninterrupted run."""
    work = tmp_path_factory.mktemp("backlog")
    sim = Simulator(username=USERNAME, password=PASSWORD, balance="100.00")
    with serve(sim) as server:
        template = str(work / "template.db")
        password_file = work / "pw"
        password_file.write_text(PASSWORD + "\n")
        new_store(template, server.url, password_file)
        pairs = sim.seed(SERVICES, EVENTS)
        adopt(template, pairs)
        # Operations waiting upstream: the first setparam event of a service completes its
        # setparam operation; the suspensions below complete the suspend operations.
        add_waiting(template, [int(remoteid) for _, remoteid in pairs[:SUSPENDED]], "setparam")
        add_waiting(template, [int(remoteid) for _, remoteid in pairs[-SUSPENDED:]], "suspend")
        for upstream_id, _ in pairs[-SUSPENDED:]:
            sim.suspend(upstream_id, msg="abuse")

        reference = str(work / "reference.db")
        copy_store(template, reference)
        out = finish(checkevent_process(reference))
        assert f"{EVENTS + SUSPENDED} applied" in out and f"{2 * SUSPENDED} operations" in out
        expected = books(reference)
        yield sim, template, expected, work


def test_an_uninterrupted_run_applies_every_event_once(backlog):
    sim, _, expected, _ = backlog
    feed = sim.events()
    assert expected["position"] == [("vds-up", int(feed[-1]["id"]["$"]), 0)]
    per_service = collections.Counter(event["remoteid"]["$"] for event in feed)
    history = collections.Counter(str(row[0]) for row in expected["history"])
    assert history == per_service and len(expected["history"]) == EVENTS + SUSPENDED
    assert {row[6] for row in expected["eventlog"]} == {"applied"}
    assert len(expected["eventlog"]) == len(feed)
    assert collections.Counter(row[3] for row in expected["operations"]) == {
        "done": 2 * SUSPENDED}
    assert collections.Counter(row[2] for row in expected["tasks"]) == {"closed": 2 * SUSPENDED}


def requests_of(sim, func, since):
    return [q for q in sim.requests[since:] if q["func"] == func]


def killed_waiting_for(sim, db_path, func):
    """Killed while the upstream holds its first ``func`` request unanswered."""
    since = len(sim.requests)
    sim.fault("delay", func=func, seconds=5)
    process = checkevent_process(db_path)
    wait_for(lambda: requests_of(sim, func, since), f"a {func} request")
    kill(process)
    sim.clear_faults()


def killed_during_the_first_fetch(sim, db_path):
    killed_waiting_for(sim, db_path, "item.event.list")
    assert cursor(db_path) == 0


def killed_mid_page(sim, db_path, after=6000):
    """Killed inside a page's transaction, once the cursor has passed ``after``."""
    process = checkevent_process(db_path)
    wait_for(lambda: cursor(db_path) > after, f"the cursor to pass {after}")
    probe = sqlite3.connect(db_path, timeout=0, isolation_level=None)

    def writing():
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # locked: its write transaction is open
            return True
        probe.execute("ROLLBACK")
        return False
    try:
        wait_for(writing, "a page being written")
        kill(process)
    finally:
        probe.close()
    assert after < cursor(db_path) < sim.next_event_id() - 1


def killed_between_pages(sim, db_path, after=14000):
    """Killed with a page fetched and not applied: the store is held busy meanwhile."""
    since = len(sim.requests)
    # Slow pages leave the store idle between them, for the test to take its write lock.
    sim.fault("delay", func="item.event.list", seconds=0.03, count=1000)
    process = checkevent_process(db_path)
    wait_for(lambda: cursor(db_path) > after, f"the cursor to pass {after}")
    holder = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        held = holder.execute("SELECT event_cursor FROM processingmodule").fetchone()[0]
        assert held < sim.next_event_id() - 1
        # Once it asks for the page after the next one, it has the next one and waits to
        # write it.
        wait_for(lambda: any(int(q["params"]["after"]) > held
                             for q in requests_of(sim, "item.event.list", since)),
                 "the prefetch")
        kill(process)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        sim.clear_faults()
    assert cursor(db_path) == held


def killed_during_the_balance_read(sim, db_path):
    killed_waiting_for(sim, db_path, "subaccount")
    assert cursor(db_path) == sim.next_event_id() - 1


@pytest.mark.parametrize("kills", [
    [killed_during_the_first_fetch],
    [killed_mid_page],
    [killed_between_pages],
    [killed_during_the_balance_read],
    [killed_during_the_first_fetch, killed_mid_page, killed_between_pages,
     killed_during_the_balance_read],
], ids=["first-fetch", "mid-page", "between-pages", "balance-read", "all-in-a-row"])
def test_killed_runs_then_a_full_one_end_as_one_uninterrupted_run(backlog, kills):
    sim, template, expected, work = backlog
    db_path = str(work / f"killed-{len(os.listdir(work))}.db")
    copy_store(template, db_path)
    for killed in kills:
        killed(sim, db_path)
    out = finish(checkevent_process(db_path))
    assert "0 unknown, 0 rejected" in out
    assert books(db_path) == expected
    # And once more: nothing left, nothing applied twice.
    out = finish(checkevent_process(db_path))
    assert out.startswith("vds-up: 0 applied")
    assert books(db_path) == expected


def test_killed_after_the_commit_before_the_ack(sim, tmp_path, password_file):
    """The ack is only an optimisation: killed before it, the next run applies nothing again
    and acknowledges then."""
    db_path = str(tmp_path / "acked.db")
    new_store(db_path, sim.server.url, password_file)
    adopt(db_path, sim.seed(200, 2500))
    last = sim.next_event_id() - 1
    sim.fault("delay", func="item.event.ack", seconds=5)
    process = checkevent_process(db_path, "--ack-after", "0")
    wait_for(lambda: requests_of(sim, "item.event.ack", 0), "the ack")
    kill(process)
    sim.clear_faults()
    before = books(db_path)
    assert before["position"] == [("vds-up", last, 0)] and len(before["history"]) == 2500

    out = finish(checkevent_process(db_path, "--ack-after", "0"))
    assert out.startswith("vds-up: 0 applied")
    assert books(db_path) == before
    assert [q["params"]["upto"] for q in requests_of(sim, "item.event.ack", 0)] == [
        str(last), str(last)]


def test_one_run_at_a_time_and_a_killed_holder_blocks_nothing(sim, tmp_path, password_file):
    db_path = str(tmp_path / "locked.db")
    new_store(db_path, sim.server.url, password_file)
    adopt(db_path, sim.seed(10, 100))
    # The running sync waits on the upstream, holding the lock.
    sim.fault("delay", func="item.event.list", seconds=20)
    holder = checkevent_process(db_path)
    wait_for(lambda: requests_of(sim, "item.event.list", 0), "the holder's first request")
    env = {**os.environ, "RESELLCTL_DB": db_path}
    for args in ([], ["-q"]):
        second = subprocess.run([sys.executable, "-m", "resellctl", "checkevent", *args],
                                env=env, capture_output=True, text=True, timeout=60)
        assert (second.returncode, second.stdout) == (TEMPFAIL, ""), second
        [line] = second.stderr.splitlines()
        started = re.fullmatch(rf"Error: checkevent is already running \(pid {holder.pid}, "
                               r"started (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\); this run exits",
                               line)
        assert started, line  # in UTC, whatever the zone of either process
        assert abs(datetime.datetime.now(datetime.timezone.utc)
                   - datetime.datetime.fromisoformat(started[1])) < datetime.timedelta(minutes=5)
        assert holder.poll() is None  # it did not wait for the holder to finish
    assert len(requests_of(sim, "item.event.list", 0)) == 1  # nor read anything

    kill(holder)
    with open(db_path + ".lock") as lock:
        assert f"pid {holder.pid}" in lock.read()  # what the dead holder left behind
    out = finish(checkevent_process(db_path))
    assert out.startswith("vds-up: 100 applied")

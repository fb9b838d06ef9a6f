"""checkevent keeps the services it met on one page for the next ones (a backlog names the same
services page after page): what another process changes in the store meanwhile, a status or the
link to the upstream item, must still be seen by the pages that follow."""

import json
import sqlite3

import pytest

from helpers import SUCCESS, USERNAME, adopt
from resellctl import feed
from resellctl.store import Store

PAGE_OF_SETPARAMS = 1000  # feed.PAGE: the first page holds only these


def between_pages(monkeypatch, action):
    """Run ``action()`` once, after checkevent has committed its first page."""
    calls = []
    apply_page = feed.apply_page

    def first_then_action(*args, **kwargs):
        result = apply_page(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            action()
        return result

    monkeypatch.setattr(feed, "apply_page", first_then_action)
    return calls


def service(db_path, item_id=7):
    conn = sqlite3.connect(db_path)
    try:
        status, upstream_id = conn.execute("SELECT status, upstream_id FROM item WHERE id = ?",
                                           (item_id,)).fetchone()
        history = [r[0] for r in conn.execute(
            "SELECT message FROM itemhistory WHERE item = ? ORDER BY id", (item_id,))]
    finally:
        conn.close()
    return status, upstream_id, history


@pytest.fixture
def page_behind(run, upstream):
    """A service whose upstream item has a first page of setparam events behind it."""
    sim = upstream
    pairs = sim.seed(1, PAGE_OF_SETPARAMS, username=USERNAME, first_remoteid=7)
    adopt(run.db_path, pairs)  # service 7
    [(upstream_id, _)] = pairs
    return sim, upstream_id


def test_a_change_another_process_makes_between_pages_is_seen(run, page_behind, monkeypatch):
    sim, upstream_id = page_behind
    sim.suspend(upstream_id, msg="abuse")  # the second page: status 3

    def resumed_locally_meanwhile():  # e.g. an admin's `tasks close`, in another process
        conn = sqlite3.connect(run.db_path)
        with conn:
            conn.execute("UPDATE item SET status = 2 WHERE id = 7")
        conn.close()

    conn = sqlite3.connect(run.db_path)
    with conn:
        conn.execute("UPDATE item SET status = 3 WHERE id = 7")
    conn.close()
    calls = between_pages(monkeypatch, resumed_locally_meanwhile)
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert len(calls) == 2
    status, _, history = service(run.db_path)
    # Read from the store as it now is (2), not as the first page left it (3): suspended again.
    assert status == 3
    assert "status 2 -> 3" in history[-1] and "reason: abuse" in history[-1]


def test_a_service_unlinked_on_one_page_is_looked_for_afresh_on_the_next(run, page_behind,
                                                                         monkeypatch):
    sim, upstream_id = page_behind
    sim.suspend(upstream_id)

    def unlinked_meanwhile():  # as an `openfail` of another run would leave it
        conn = sqlite3.connect(run.db_path)
        with conn:
            conn.execute("UPDATE item SET upstream_id = NULL, upstream_module = NULL "
                         "WHERE id = 7")
        conn.close()

    between_pages(monkeypatch, unlinked_meanwhile)
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    status, linked, history = service(run.db_path)
    # Not applied to the unlinked service from memory: found again by its remoteid, relinked.
    assert linked == upstream_id and status == 3


def test_a_full_page_is_written_within_the_variables_older_sqlite_allows(run, page_behind,
                                                                         monkeypatch):
    # SQLite before 3.32 binds at most 999 values per statement; rows go many to a statement.
    open_store = Store.open.__func__

    def limited(cls, *args, **kwargs):
        store = open_store(cls, *args, **kwargs)
        store.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return store

    monkeypatch.setattr(Store, "open", classmethod(limited))
    r = run("checkevent", "--json")
    assert r.exit_code == SUCCESS, r
    [summary] = json.loads(r.stdout)
    assert summary["applied"] == PAGE_OF_SETPARAMS
    _, _, history = service(run.db_path)
    assert len(history) == PAGE_OF_SETPARAMS

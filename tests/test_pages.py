"""A listing is a page: one cut short says so on stderr with the command for the next page;
--last shows the newest rows."""

import json

import pytest

from helpers import SUCCESS
from resellctl.store import Store, now


@pytest.fixture
def many(db_path):
    """1001 operations of 1001 services: every third failed, the rest waiting; the services
    of the failed ones suspended, the others active."""
    store = Store.open(db_path)
    with store.write() as conn:
        conn.execute("INSERT INTO processingmodule (id, name, type, cdate) "
                     "VALUES (1, 'manual', 'manual', ?)", (now(),))
        for n in range(1, 1002):
            failed = n % 3 == 0
            conn.execute("INSERT INTO item (id, client, itemtype, status, processingmodule) "
                         "VALUES (?, 'acme', 'vds', ?, 1)", (n, 3 if failed else 2))
            conn.execute("INSERT INTO runningoperation (id, item, itemtype, client, cdate, "
                         "processingmodule, status, operation, params) VALUES "
                         "(?, ?, 'vds', 'acme', ?, 1, ?, 'suspend', '{}')",
                         (n, n, now(), "failed" if failed else "waiting"))
    store.close()


def test_the_default_page_of_1000_says_there_is_more(run, many):
    r = run("ops", "list", "-q")
    assert r.exit_code == SUCCESS, r
    assert r.stdout.split() == [str(n) for n in range(1, 1001)]
    assert r.stderr == "more rows: resellctl ops list --quiet --after 1000\n"
    rest = run("ops", "list", "--quiet", "--after", "1000")
    assert (rest.stdout, rest.stderr) == ("1001\n", "")


def test_the_next_page_keeps_the_filters_and_the_format(run, many):
    r = run("ops", "list", "--status", "failed", "--limit", "2", "--json")
    assert [op["id"] for op in json.loads(r.stdout)] == [3, 6]
    assert r.stderr == ("more rows: resellctl ops list --status failed --limit 2 --json "
                        "--after 6\n")
    r = run("services", "list", "--status", "3", "--limit", "1", "-q")
    assert (r.stdout, r.stderr) == (
        "3\n", "more rows: resellctl services list --status suspended --limit 1 --quiet "
               "--after 3\n")
    r = run("tasks", "list", "--limit", "1")
    assert r.stderr == ""  # no task at all: nothing held back
    assert run("ops", "list", "--limit", "0", "-q").stderr == ""


def test_last_shows_the_newest_in_id_order(run, many):
    assert run("ops", "list", "--last", "3", "-q").stdout == "999\n1000\n1001\n"
    r = run("services", "list", "--status", "suspended", "--last", "2", "--json")
    assert [s["id"] for s in json.loads(r.stdout)] == [996, 999] and r.stderr == ""
    assert run("ops", "list", "--last", "2", "--after", "1000", "-q").stdout == "1001\n"

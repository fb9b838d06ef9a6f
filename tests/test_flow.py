"""The reselling flow end to end: order -> operation -> task -> checkevent, over real HTTP."""

import json
import os
import stat

from helpers import ERROR, PASSWORD, SUCCESS, number, tsv


def test_low_balance_topup_start_checkevent(run, upstream):
    sim = upstream
    sim.set_balance("3.00")
    r = run("order", "VDS-1", "--period", "1", "--client", "acme", "--json")
    assert r.exit_code == ERROR, r
    [created] = json.loads(r.stdout)
    assert created["status"] == "failed" and created["task"] is None
    assert "Insufficient funds" in r.stderr
    assert f"resellctl ops start {created['runningoperation']}" in r.stderr
    # The failure, what to do, and the count: three lines.
    assert len(r.stderr.splitlines()) == 3
    assert r.stderr.splitlines()[-1] == "Error: 1 of 1 operation(s) failed"

    shown = json.loads(run("ops", "show", created["runningoperation"], "--json").stdout)
    assert shown["status"] == "failed" and shown["trycount"] == 1
    assert shown["errors"][0]["type"] == "balance"
    assert shown["errors"][0]["deficit"] == "2.00"
    assert json.loads(run("tasks", "list", "--json").stdout) == []
    assert sim.balance() == 3  # nothing charged

    sim.topup("50")
    r = run("ops", "list", "--status", "failed", "-q")
    assert r.stdout.split() == [str(created["runningoperation"])]
    r = run("ops", "start", "-", input=r.stdout)
    assert r.exit_code == SUCCESS, r
    [task] = json.loads(run("tasks", "list", "--json").stdout)
    assert task["type"] == "postopen" and task["status"] == "open"
    assert task["item"] == created["item"]
    assert sim.balance() == 48

    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "1 applied" in r.stdout and "1 operations completed" in r.stdout
    service = json.loads(run("services", "show", created["item"], "--json").stdout)
    assert service["status"] == 2
    assert service["expiredate"]
    assert service["params"]["ip"].startswith("192.0.2.")
    assert service["addons"]["disk"] == "30"
    op = json.loads(run("ops", "show", created["runningoperation"], "--json").stdout)
    assert op["status"] == "done" and op["trycount"] == 2
    [task] = json.loads(run("tasks", "list", "--json").stdout)
    assert task["status"] == "closed" and task["closedate"]

    # A second run applies nothing again.
    r = run("checkevent", "--json")
    [summary] = json.loads(r.stdout)
    assert summary["applied"] == 0 and summary["cursor"] > 0


def test_order_quantity_makes_one_service_operation_task_each(run, upstream):
    r = run("order", "VDS-1", "--quantity", "3", "--client", "acme")
    assert r.exit_code == SUCCESS, r
    rows = tsv(r.stdout)
    assert [row["status"] for row in rows] == ["waiting"] * 3
    assert len({row["item"] for row in rows}) == 3
    tasks = json.loads(run("tasks", "list", "--json").stdout)
    assert sorted(t["item"] for t in tasks) == sorted(int(row["item"]) for row in rows)
    orders = [q for q in upstream.requests if q["func"] == "vds.order.param"]
    assert (sorted(number(q["params"]["remoteid"]) for q in orders)
            == sorted(int(row["item"]) for row in rows))


def test_store_file_is_private(run, upstream):
    mode = stat.S_IMODE(os.stat(run.db_path).st_mode)
    assert mode == 0o600


def test_password_never_shown_nor_in_urls(run, upstream):
    sim = upstream
    outputs = []
    for args in (("modules", "list"), ("modules", "list", "--json"),
                 ("order", "VDS-1"), ("checkevent", "--json"), ("ops", "list", "--json")):
        r = run(*args)
        outputs += [r.stdout, r.stderr]
    sim.fault("500", func="*", count=10)
    r = run("order", "VDS-1")
    outputs += [r.stdout, r.stderr]
    r = run("ops", "start", "--dry-run", "1")
    outputs += [r.stdout, r.stderr]
    for text in outputs:
        assert PASSWORD not in text
    assert all(PASSWORD not in q["path"] and "?" not in q["path"] for q in sim.requests)
    assert all(q["method"] == "POST" for q in sim.requests)

"""The reselling flow end to end: order -> operation -> task -> checkevent, over real HTTP."""

import json

from helpers import ERROR, SUCCESS


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

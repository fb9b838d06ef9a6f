"""Every kind of operation, walked from its request to its completion, under a billmanager
module and under a manual one: a kind that lacks a part fails here instead of hanging."""

import json
import re
from pathlib import Path

import pytest

from helpers import (SUCCESS, change, complete, months_after, op, open_tasks, order_active, show,
                     tsv)
from resellctl import changes, kinds


# kind -> (what to do first, the command asking for it, what the service shows once done)
WALKS = {
    "open": (None, None, lambda before, after: after["status"] == 2),
    "prolong": (None, ["prolong", "{item}", "--period", "1"],
                lambda before, after: after["expiredate"] == months_after(before["expiredate"], 1)),
    "suspend": (None, ["suspend", "{item}"], lambda before, after: after["status"] == 3),
    "resume": (["suspend", "{item}"], ["resume", "{item}"],
               lambda before, after: after["status"] == 2),
    "close": (None, ["close", "{item}", "--yes"], lambda before, after: after["status"] == 4),
    "changepricelist": (None, ["change-tariff", "{item}", "VDS-1-RAM"],
                        lambda before, after: (after["pricelist"], after["addons"]["ram"])
                        == ("VDS-1-RAM", "2048")),
    "setparam": (None, ["set-param", "{item}", "hostname=walked.example"],
                 lambda before, after: after["params"]["hostname"] == "walked.example"),
}


def test_every_kind_is_walked_and_whole():
    assert set(WALKS) == set(kinds.KINDS)
    task_types = [kind.task_type for kind in kinds.KINDS.values()]
    assert len(set(task_types)) == len(task_types)
    for kind in kinds.KINDS.values():
        assert kind.completed_by in changes.TYPES, kind.name
        assert kind.failed_by is None or kind.failed_by in changes.TYPES, kind.name
        assert kinds.COMPLETES[kind.completed_by] == (kind.name, True)
    # Only an order has no manual form: it always goes to its tariff's upstream.
    assert [k.name for k in kinds.KINDS.values() if k.local is None] == ["open"]


def _args(args, item):
    return [a.format(item=item) for a in args]


@pytest.mark.parametrize("name", sorted(WALKS))
def test_each_kind_completes_with_its_upstream_change(run, upstream, name):
    setup, args, done = WALKS[name]
    if args is None:  # the order itself
        r = run("order", "VDS-1", "--json")
        [row] = json.loads(r.stdout)
        assert row["status"] == "waiting" and row["task"]
        complete(run, {k: str(v) for k, v in row.items()})
        assert done(None, show(run, row["item"]))
        return
    item, _ = order_active(run, upstream)
    if setup:
        complete(run, change(run, *_args(setup, item)))
    before = show(run, item)
    row = change(run, *_args(args, item))
    assert row["status"] == "waiting" and row["task"]
    complete(run, row)
    assert done(before, show(run, item))


@pytest.mark.parametrize("name", sorted(n for n in WALKS if kinds.kind(n).local))
def test_each_kind_completes_when_staff_close_its_manual_task(run, upstream, name):
    setup, args, done = WALKS[name]
    item, _ = order_active(run, upstream)
    if setup:
        complete(run, change(run, *_args(setup, item)))
    assert run("set-module", item, "manual").exit_code == SUCCESS
    before = show(run, item)
    sent = len(upstream.requests)
    r = run("services", *_args(args, item))
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    assert row["status"] == "waiting" and row["task"]
    assert f"resellctl tasks close {row['task']}" in r.stderr
    assert len(upstream.requests) == sent  # nothing goes upstream
    [task] = open_tasks(run)
    assert (task["id"], task["type"], task["item"]) == (
        int(row["task"]), kinds.kind(name).task_type, item)
    r = run("tasks", "close", row["task"], "--note", "done by hand")
    assert r.exit_code == SUCCESS, r
    assert op(run, row["runningoperation"])["status"] == "done"
    after = show(run, item)
    assert done(before, after)
    [task] = [t for t in after["tasks"] if t["id"] == int(row["task"])]
    assert task["status"] == "closed"
    assert after["history"][-1]["source"] == "task"
    assert "(done by hand)" in after["history"][-1]["message"]
    assert len(upstream.requests) == sent  # nor when its task is closed


# --- one owner of every status ----------------------------------------------------------------

OWNED = ("item", "task", "runningoperation")


def test_only_the_states_module_writes_a_status():
    """Every status change goes through resellctl/states.py; the simulator keeps its own."""
    package = Path(kinds.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "states.py" or "sim" in path.relative_to(package).parts:
            continue
        # Adjacent string literals, as Python joins them, so a statement split over lines
        # reads as one.
        text = re.sub(r'"\s*\n\s*(f?)"', "", path.read_text())
        for table in OWNED:
            for match in re.finditer(rf"UPDATE {table} SET (.*?)WHERE", text, re.S):
                if re.search(r"\bstatus\b", match.group(1)):
                    offenders.append(f"{path.name}: UPDATE {table} ... status")
            if re.search(rf"INSERT INTO {table} \(", text):
                offenders.append(f"{path.name}: INSERT INTO {table}")
    assert offenders == []

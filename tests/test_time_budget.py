"""checkevent's time budget is a deadline for every call of the run: what would start past it
waits for the next run instead (tests/test_hostile.py has the calls it cuts short)."""

import json
import time
from decimal import Decimal

from resellctl import sync
from resellctl.operations import Engine
from resellctl.store import Store


def operation(run, op_id):
    return json.loads(run("ops", "show", op_id, "--json").stdout)


def test_no_re_run_for_funds_starts_past_the_deadline(run, upstream):
    """Started, it would fail unsent and so leave the operations that wait for funds."""
    upstream.set_balance("0.00")
    [ordered] = json.loads(run("order", "VDS-1", "--json").stdout)
    op_id = ordered["runningoperation"]
    upstream.topup("50.00")
    store = Store.open(run.db_path)
    try:
        module = store.module("vds-up")
        warnings = []
        assert sync.rerun_for_funds(store, Engine(store), module, Decimal("50.00"), warnings,
                                    time.monotonic()) == 0
    finally:
        store.close()
    assert warnings == []
    op = operation(run, op_id)
    assert (op["status"], op["trycount"], op["errors"][-1]["type"]) == ("failed", 1, "balance")
    # The next run takes it up.
    assert run("checkevent").exit_code == 0
    assert operation(run, op_id)["status"] == "waiting"

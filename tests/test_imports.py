"""Import discipline: the read-only commands never load requests, tenacity or rich (nor
sqlite_utils, which only a migration needs), so a sysadmin's loops and pipelines start fast.
Each command runs in a fresh interpreter, which then reports what it imported."""

import json
import os
import subprocess
import sys

import pytest

from helpers import SUCCESS
from resellctl.store import Store, now

pytestmark = pytest.mark.slow  # each command runs in an interpreter of its own


HEAVY = {"requests", "tenacity", "rich", "sqlite_utils", "urllib3"}

# Runs `resellctl ARGS...` in this interpreter, then prints its stdout and the modules loaded.
PROBE = """
import io, json, sys
from resellctl.cli import main
sys.argv = ["resellctl", *sys.argv[1:]]
sys.stdout = captured = io.StringIO()
try:
    main()
except SystemExit:
    pass
print(json.dumps([captured.getvalue(), sorted(sys.modules)]), file=sys.__stdout__)
"""


def imported(db_path, *args):
    """``(stdout, set of modules)`` of ``resellctl ARGS`` in a new process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env={**os.environ, "RESELLCTL_DB": db_path}, timeout=60)
    assert done.returncode == SUCCESS, done.stderr
    stdout, modules = json.loads(done.stdout.splitlines()[-1])
    return stdout, set(modules)


@pytest.fixture
def store_with_a_failed_order(db_path):
    """A migrated store with a billmanager module, a service, an operation and its task."""
    store = Store.open(db_path)
    with store.write() as conn:
        conn.execute("INSERT INTO processingmodule (id, name, type, url, username, cdate) "
                     "VALUES (1, 'vds-up', 'billmanager', 'http://127.0.0.1:9/billmgr', "
                     "'reseller', ?)", (now(),))
        store.set_password(1, "secret")
        conn.execute("INSERT INTO pricelist (id, processingmodule, remote_id, name, itemtype) "
                     "VALUES (1, 1, '11', 'VDS-1', 'vds')")
        conn.execute("INSERT INTO item (id, client, pricelist, itemtype, status, "
                     "processingmodule, period) VALUES (7, 'acme', 1, 'vds', 1, 1, 1)")
        conn.execute("INSERT INTO runningoperation (id, item, itemtype, client, cdate, "
                     "processingmodule, status, operation, params) VALUES "
                     "(3, 7, 'vds', 'acme', ?, 1, 'failed', 'open', ?)",
                     (now(), '{"pricelist": 1, "pricelist_remote_id": "11", "period": 1}'))
        conn.execute("INSERT INTO task (id, type, item, runningoperation, status) VALUES "
                     "(5, 'postopen', 7, 3, 'open')")
    store.close()
    return db_path


@pytest.mark.parametrize("args, shows", [
    (["--version"], "resellctl, version"),
    (["ops", "list"], "\tfailed\t"),
    (["ops", "list", "--json"], '"status": "failed"'),
    (["services", "list", "--status", "1", "-q"], "7\n"),
    (["tasks", "list"], "\tpostopen\t"),
    (["services", "list", "--status", "ordered", "--last", "5", "-q"], "7\n"),
    (["events", "list", "--problem", "--json"], "[]"),
    (["status"], "module vds-up"),
])
def test_read_only_commands_import_nothing_heavy(store_with_a_failed_order, args, shows):
    stdout, modules = imported(store_with_a_failed_order, *args)
    assert shows in stdout  # the command did its work in the probe
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_a_command_that_talks_to_the_upstream_does_import_requests(store_with_a_failed_order):
    # The probe sees imports: `ops start --dry-run` builds the request (sending nothing).
    stdout, modules = imported(store_with_a_failed_order, "ops", "start", "--dry-run", "3")
    assert "vds.order.param" in stdout
    assert {"requests", "tenacity"} <= modules

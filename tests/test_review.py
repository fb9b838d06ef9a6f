"""What a sysadmin runs into at 3 a.m.: bad input that must change nothing, odd values, a full or
read-only disk, and the ways out of a stuck service."""

import pytest

from resellctl.store import Store


def _books(db_path, sql, params=()):
    store = Store.open(db_path)
    try:
        return [tuple(row) for row in store.all(sql, params)]
    finally:
        store.close()


def _active_service(run, sim):
    assert run("order", "VDS-1", "--client", "acme").exit_code == 0
    sim.open_pending()
    assert run("checkevent").exit_code == 0


@pytest.mark.parametrize("args", [
    ["order", "VDS-1", "--param", "remoteid=5"],
    ["order", "VDS-1", "--param", "sok=no"],
    ["order", "VDS-1", "--addon", "disk=40", "--param", "addon_101=99"],
    ["services", "set-param", "1", "elid=9"],
    ["services", "set-param", "1", "authinfo=x:y"],
])
def test_a_parameter_the_protocol_sets_is_refused_before_anything_is_written(run, upstream, args):
    _active_service(run, upstream)
    before = _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id")
    r = run(*args)
    assert r.exit_code == 2, r
    assert "is reserved for the protocol" in r.stderr
    # No service and no operation were written, so nothing is left stuck in status new...
    assert _books(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id") == before
    assert _books(run.db_path, "SELECT count(*) FROM item") == [(1,)]
    # ...and the service can still be changed.
    assert run("services", "set-param", "1", "hostname=www.example.com").exit_code == 0

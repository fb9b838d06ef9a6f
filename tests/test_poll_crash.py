"""checkevent polling a real BILLmanager, killed with SIGKILL at several points, then run
again: the books end exactly as after one uninterrupted run, each change applied once and
written once in the history."""

import pytest

from helpers import (PASSWORD, USERNAME, add_waiting, adopt, books, checkevent_process, copy_store,
                     finish, kill, new_store, wait_for)
from resellctl.sim import Simulator, serve

pytestmark = pytest.mark.slow

SERVICES = 450  # more than two batches of forms read (poll.BATCH)
SUSPENDED = 100  # suspended upstream, each with a suspend operation waiting


@pytest.fixture(scope="module")
def polled(tmp_path_factory):
    """A simulated BILLmanager 6 whose services differ from the books (every expiry, and
    SUSPENDED suspensions), a store to copy, and the books after one uninterrupted run."""
    work = tmp_path_factory.mktemp("polled")
    sim = Simulator(username=USERNAME, password=PASSWORD, balance="100.00", api="bm6")
    with serve(sim) as server:
        template = str(work / "template.db")
        password_file = work / "pw"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o600)
        new_store(template, server.url, password_file, api="bm6")
        pairs = sim.seed(SERVICES, 0)
        adopt(template, pairs)
        for upstream_id, _ in pairs[:SUSPENDED]:
            sim.suspend(upstream_id)
        add_waiting(template, [int(remoteid) for _, remoteid in pairs[:SUSPENDED]], "suspend")
        reference = str(work / "reference.db")
        copy_store(template, reference)
        finish(checkevent_process(reference))
        yield sim, template, books(reference), work


@pytest.mark.parametrize("func, before", [
    ("vds", 0),  # while listing
    ("vds.edit", 3),  # reading the first batch of forms
    ("vds.edit", 205),  # after the first batch was applied
    ("dashboard.info", 0),  # after every change was applied
], ids=["listing", "first-batch", "second-batch", "balance"])
def test_killed_while_polling_then_run_again(polled, func, before):
    sim, template, reference, work = polled
    db_path = str(work / f"killed-{func}-{before}.db")
    copy_store(template, db_path)
    seen = len([q for q in sim.requests if q["func"] == func])
    if before:
        sim.fault("delay", func=func, count=before, seconds=0)
    sim.fault("delay", func=func, count=1, seconds=30)
    process = checkevent_process(db_path)
    try:
        wait_for(lambda: len([q for q in sim.requests if q["func"] == func]) > seen + before,
                 f"the {before + 1}th {func} request")
    finally:
        kill(process)
        sim.clear_faults()
    finish(checkevent_process(db_path))
    assert books(db_path) == reference


def test_the_uninterrupted_run_applied_every_difference_once(polled):
    _, _, reference, _ = polled
    done = [op for op in reference["operations"] if op[3] == "done"]
    assert len(done) == SUSPENDED
    kinds = [h[4].split(" ")[0] for h in reference["history"] if h[1] == "poll"]
    # The books knew neither expiry nor resources of any service: each gets both once.
    assert (kinds.count("prolong"), kinds.count("addon"), kinds.count("suspend")) == (
        SERVICES, SERVICES, SUSPENDED)
    assert len(kinds) == 2 * SERVICES + SUSPENDED
    assert sum(1 for item in reference["items"] if item[1] == 3) == SUSPENDED

"""``checkevent``: one run of the event sync over every billmanager module.

One run at a time per store (an advisory lock that dies with its process), bounded work per
run (an event count and a time budget, so a run never overlaps the next cron tick by design),
the next page fetched while this one is applied, the upstream acknowledged only after commit
and only once the events are old enough that no backup restore may need them again.
After the events, each module's balance is read, compared with its minimal balance, and
operations that failed for want of funds are re-run, oldest first, as far as it covers them.
"""

import contextlib
import dataclasses
import datetime
import decimal
import fcntl
import gc
import os
import threading
import time

from resellctl import errors
from resellctl.errors import LockHeld, UpstreamError
from resellctl.applier import Services
from resellctl.events import PageResult, apply_page, event_id, feed_end
from resellctl.states import OpStatus
from resellctl.store import now
from resellctl.storefiles import beside, open_private

PAGE = 1000  # events per request: the protocol's maximum
DEFAULT_BUDGET = 240.0  # seconds: well inside cron's five-minute tick
DEFAULT_ACK_AFTER = 7.0  # days the upstream keeps applied events, for --from after a restore


@dataclasses.dataclass(kw_only=True)
class ModuleSummary(PageResult):
    """What one run did for one module: its pages' counts added up, and the rest of the
    summary line and its JSON."""

    module: str
    rerun: int = 0
    more: bool = False
    balance: str | None = None
    currency: str | None = None
    min_balance: str | None = None
    low_balance: bool = False
    error: str | None = None
    error_kind: str | None = None
    warnings: list = dataclasses.field(default_factory=list)


class SyncLock:
    """An exclusive, non-blocking flock on ``<store>.lock``; the kernel drops it with its holder."""

    def __init__(self, store_path):
        self.path = beside(store_path, ".lock")
        self.fd = None

    def __enter__(self):
        fd = open_private(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            # One line: cron mails it, and the running sync takes the events anyway.
            raise LockHeld(f"checkevent is already running ({holder}); this run exits") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {now()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing releases the flock


def run(engine, module_ref=None, max_events=None, budget=DEFAULT_BUDGET, from_id=None,
        progress=None, ack_after=DEFAULT_ACK_AFTER):
    """Sync every billmanager module (or one); returns a list of ModuleSummary.

    An upstream failure stops its module only: it is recorded in that module's summary and
    the other modules are synced all the same.
    """
    store = engine.store
    if module_ref is not None:
        modules = [store.module(module_ref)]
        if modules[0]["type"] != "billmanager":
            raise errors.InputError(f"module {modules[0]['name']!r} is a manual module: "
                                    "it has no events")
    else:
        modules = store.all("SELECT * FROM processingmodule WHERE type = 'billmanager' "
                            "ORDER BY id")
    deadline = time.monotonic() + budget if budget else None
    summaries = []
    with SyncLock(store.path):
        for module in modules:
            # Read again under the lock: the run that held it may have moved the position.
            module = store.one("SELECT * FROM processingmodule WHERE id = ?", (module["id"],))
            summary = ModuleSummary(module=module["name"], cursor=module["event_cursor"] or 0)
            summaries.append(summary)
            try:
                client = engine.upstreams.client(module)
                client.deadline = deadline  # retries too end with the run's time budget
                sync_module(store, client, module, summary, max_events, deadline, from_id,
                            progress)
                acknowledge(store, client, module, summary, ack_after)
                check_balance(engine, module, summary, deadline)
            except UpstreamError as error:
                summary.error = f"{error.message}" + (f" ({error.hint})" if error.hint else "")
                summary.error_kind = error.kind
    return summaries


def sync_module(store, client, module, summary, max_events, deadline, from_id, progress):
    """Read and apply the module's feed from its stored position (or ``from_id``)."""
    stored = (module["event_cursor"] or 0, module["event_skip"] or 0)
    start = stored
    if from_id is not None and from_id - 1 < stored[0]:
        start = (from_id - 1, 0)
    remaining = max_events

    def fetch(position):
        """The page after ``position``: its new records, whether more wait, where they start."""
        cursor, skip = position
        if skip >= PAGE:
            raise UpstreamError(errors.PERMANENT, (
                f"the upstream sent {skip} events in a row without a usable id after event "
                f"{cursor}; the feed cannot move past them"),
                hint="see `resellctl events list --problem` and ask the upstream to fix them")
        want = PAGE if remaining is None else max(1, min(PAGE, remaining))
        raws, more = client.events(cursor, min(PAGE, skip + want))
        idents = list(map(event_id, raws))
        # The records already read after the cursor come first again; pass over them.
        drop = 0
        while drop < min(skip, len(raws)) and idents[drop] is None:
            drop += 1
        return raws[drop:], idents[drop:], more, (cursor, drop)

    services = Services()
    with _no_cycle_collection():
        page = _Prefetch(fetch, start)
        while True:
            raws, idents, more, position = page.result()
            end = feed_end(position, idents)
            if remaining is not None:
                remaining -= len(raws)
            out_of_time = deadline is not None and time.monotonic() > deadline
            go_on = more and end > position and not out_of_time and (
                remaining is None or remaining > 0)
            if go_on:
                # Fetch the next page while this one is applied.
                page = _Prefetch(fetch, end)
            summary.add(apply_page(store, module, raws, position, idents, services))
            if progress:
                progress(module["name"], sum(getattr(summary, f) for f in PageResult.COUNTS
                                             if f != "completed"))
            if not go_on:
                summary.more = bool(more and raws)
                break


class _Prefetch:
    """``fn(*args)`` run in a thread of its own while the caller goes on; ``result()`` waits
    for it. A daemon thread: Ctrl-C never waits for a page request still in flight."""

    def __init__(self, fn, *args):
        self._outcome = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(fn, args), daemon=True).start()

    def _run(self, fn, args):
        try:
            self._outcome = (True, fn(*args))
        except BaseException as error:  # handed to the caller by result()
            self._outcome = (False, error)
        finally:
            self._done.set()

    def result(self):
        self._done.wait()
        ok, value = self._outcome
        if not ok:
            raise value
        return value


@contextlib.contextmanager
def _no_cycle_collection():
    """The cyclic garbage collector paused: a page of events is a tree of dicts and strings
    that reference counting frees once it is applied; the collector would only walk each page
    again and again."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def acknowledge(store, client, module, summary, ack_after):
    """Let the upstream discard the events applied at least ``ack_after`` days ago.

    A run marks the cursor (``ack_mark`` at ``ack_mark_date``); a later run acknowledges the
    mark once it is old enough and marks the cursor anew. The upstream so keeps every applied
    event for ``ack_after`` to twice ``ack_after`` days. A mark without a date is acknowledged
    already. With ``ack_after`` 0, the cursor is acknowledged at once. The cursor, not the
    ack, decides what is applied: a lost ack costs only storage.
    """
    cursor = store.one("SELECT event_cursor FROM processingmodule WHERE id = ?",
                       (module["id"],))[0] or 0
    mark, marked = module["ack_mark"] or 0, module["ack_mark_date"]
    before = (mark, marked)
    if ack_after:
        # Both in the store's UTC form, which sorts as the times it holds.
        due = now(datetime.timedelta(days=ack_after))
        upto = mark if marked and marked <= due else 0
    else:
        upto = cursor if cursor > mark or (marked and cursor) else 0
    if upto:
        try:
            client.ack(upto)
        except UpstreamError as error:
            summary.warnings.append(f"could not acknowledge events up to {upto}: "
                                    f"{error.message}")
            return
        mark, marked = upto, None
    if ack_after and not marked and cursor > mark:
        mark, marked = cursor, now()
    if (mark, marked) != before:
        with store.write():
            store.conn.execute("UPDATE processingmodule SET ack_mark = ?, ack_mark_date = ? "
                               "WHERE id = ?", (mark, marked, module["id"]))


def check_balance(engine, module, summary, deadline=None):
    """Record the module's balance, warn below its minimum, re-run operations it now covers
    (none once ``deadline``, a ``time.monotonic()`` value, has passed)."""
    store = engine.store
    balance, currency = engine.upstreams.client(module).balance()
    with store.write():
        store.conn.execute("UPDATE processingmodule SET balance = ?, currency = ?, "
                           "balance_date = ? WHERE id = ?",
                           (str(balance), currency, now(), module["id"]))
    summary.balance, summary.currency = str(balance), currency
    if module["min_balance"]:
        summary.min_balance = module["min_balance"]
        summary.low_balance = balance < decimal.Decimal(module["min_balance"])
    if module["auto_rerun"]:
        summary.rerun = rerun_for_funds(engine, module, balance, summary.warnings, deadline)


def rerun_for_funds(engine, module, balance, warnings, deadline=None):
    """Re-run operations that failed for want of funds, oldest first, while the balance lasts.

    The queue is strict: the first operation the balance does not cover stops it, so a large
    old order is not starved by newer cheap ones. It also stops at the first that gets no
    answer: each of the rest would only wait out its own retries, holding the sync lock; and
    at ``deadline`` (the run's time budget), so that the run ends before the next cron tick.
    A re-run that fails again is added to ``warnings``: `-q` shows it.
    """
    left, rerun = balance, 0
    for op in engine.store.all("SELECT id, amount FROM runningoperation WHERE "
                               "processingmodule = ? AND status = ? AND error_type = ? "
                               "ORDER BY id", (module["id"], OpStatus.FAILED, errors.BALANCE)):
        amount = _money(op["amount"])
        if amount is None:
            continue  # no amount recorded: only `ops start` can tell
        if amount > left:
            break
        if deadline is not None and time.monotonic() >= deadline:
            warnings.append(f"the time budget ended before operation {op['id']} and those after "
                            "it could be re-run for funds; the next run goes on")
            break
        outcome = engine.process(op["id"], deadline)
        rerun += 1
        if outcome.status != OpStatus.FAILED:
            left -= amount
            continue
        warnings.append(f"operation {op['id']}, re-run for funds, failed again: "
                        f"{outcome.error.message if outcome.error else 'see resellctl ops show'}")
        if outcome.error is not None and outcome.error.kind in (
                errors.BALANCE, errors.TRANSIENT):
            break
    return rerun


def _money(text):
    """An amount the upstream sent, or None when it is none (NaN fails every comparison)."""
    try:
        amount = decimal.Decimal(text) if text else None
    except decimal.InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() else None

"""Reading an ``events``-dialect upstream's item event feed, page after page.

The next page is fetched while this one is applied (resellctl.events.apply_page: each page and
the feed position in one transaction); the upstream is acknowledged only after commit, and only
once the events are old enough that no backup restore may need them again (``--from``).
"""

import contextlib
import datetime
import gc
import threading
import time

from resellctl import errors
from resellctl.applier import Services
from resellctl.errors import UpstreamError
from resellctl.events import PageResult, apply_page, event_id, feed_end
from resellctl.store import now

PAGE = 1000  # events per request: the protocol's maximum


def read(store, client, module, summary, max_events, deadline, from_id, progress):
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
        raws, more = client.events(cursor, min(PAGE, skip + want), deadline=deadline)
        idents = list(map(event_id, raws))
        # The records already read after the cursor come first again; pass over them.
        drop = 0
        while drop < min(skip, len(raws)) and idents[drop] is None:
            drop += 1
        return raws[drop:], idents[drop:], more, (cursor, drop)

    services = Services()
    with _no_cycle_collection():
        page = first = _Prefetch(fetch, start)
        while True:
            try:
                raws, idents, more, position = page.result()
            except UpstreamError:
                if page is first or not past(deadline):
                    raise
                # The page in flight when the time budget ran out: the next run reads it.
                summary.more = True
                break
            end = feed_end(position, idents)
            if remaining is not None:
                remaining -= len(raws)
            go_on = more and end > position and not past(deadline) and (
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


def past(deadline):
    """Whether the run's time budget (a ``time.monotonic()`` value, or None) is spent."""
    return deadline is not None and time.monotonic() >= deadline


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


def acknowledge(store, client, module, summary, ack_after, deadline):
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
            client.ack(upto, deadline=deadline)
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


def preview(store, client, module, max_events, deadline):
    """The events that wait after the module's position, as they would be applied (each
    with the service it names), reading the feed without applying or acknowledging anything
    (``checkevent --dry-run``)."""
    from resellctl.changes import described
    from resellctl.events import Rejected, parse

    position, shown, limit = module["event_cursor"] or 0, [], max_events or PAGE
    while len(shown) < limit and not past(deadline):
        raws, more = client.events(position, min(PAGE, limit - len(shown)), deadline=deadline)
        for raw in raws:
            ident = event_id(raw)
            try:
                change = parse(raw, ident)
            except Rejected as why:
                shown.append({"item": None, "event": ident, "type": None,
                              "rejected": str(why)})
                continue
            row = store.one("SELECT id FROM item WHERE upstream_module = ? AND upstream_id = ?",
                            (module["id"], change.item))
            if row is None and change.remoteid:
                row = store.one("SELECT id FROM item WHERE remoteid = ?", (change.remoteid,))
            shown.append(described(row["id"] if row else None, change))
        ids = [i for i in map(event_id, raws) if i is not None]
        if not more or not ids or max(ids) <= position:
            break
        position = max(ids)
    return shown

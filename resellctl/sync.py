"""``checkevent``: one run of the event sync over every billmanager module.

One run at a time per store (an advisory lock that dies with its process), bounded work per
run (an event count and a time budget, so a run never overlaps the next cron tick by design),
the next page fetched while this one is applied, the upstream acknowledged only after commit.
After the events, each module's balance is read, compared with its minimal balance, and
operations that failed for want of funds are re-run, oldest first, as far as it covers them.
"""

import concurrent.futures
import dataclasses
import decimal
import fcntl
import os
import time

from resellctl import errors
from resellctl.errors import LockHeld, UpstreamError
from resellctl.events import PageResult, apply_page, event_id
from resellctl.store import now

PAGE = 1000
DEFAULT_BUDGET = 240.0  # seconds: well inside cron's five-minute tick


@dataclasses.dataclass
class ModuleSummary:
    """What one run did for one module; the fields are the summary line and its JSON."""

    module: str
    applied: int = 0
    skipped: int = 0
    unknown: int = 0
    rejected: int = 0
    completed: int = 0
    rerun: int = 0
    cursor: int = 0
    more: bool = False
    balance: str | None = None
    currency: str | None = None
    min_balance: str | None = None
    low_balance: bool = False
    error: str | None = None
    error_kind: str | None = None
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def problems(self):
        return bool(self.unknown or self.rejected or self.error or self.low_balance
                    or self.warnings)


class SyncLock:
    """An exclusive, non-blocking flock on ``<store>.lock``; the kernel drops it with its holder."""

    def __init__(self, store_path):
        self.path = store_path + ".lock"
        self.fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(f"checkevent is already running ({holder}); this run exits",
                           "Nothing to do: the running sync will take the events.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {now()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing releases the flock


def run(store, engine, module_ref=None, max_events=None, budget=DEFAULT_BUDGET, from_id=None,
        progress=None):
    """Sync every billmanager module (or one); returns a list of ModuleSummary."""
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
            summary = ModuleSummary(module["name"], cursor=module["event_cursor"] or 0)
            summaries.append(summary)
            try:
                sync_module(store, engine, module, summary, max_events, deadline, from_id,
                            progress)
                check_balance(store, engine, module, summary)
            except UpstreamError as error:
                summary.error = f"{error.message}" + (f" ({error.hint})" if error.hint else "")
                summary.error_kind = error.kind
    return summaries


def sync_module(store, engine, module, summary, max_events, deadline, from_id, progress):
    client = engine.client(module)
    start = module["event_cursor"] or 0
    after = start if from_id is None else max(0, int(from_id) - 1)
    total = PageResult(cursor=start)
    remaining = max_events

    def limit():
        return PAGE if remaining is None else max(1, min(PAGE, remaining))

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        page = pool.submit(client.events, after, limit())
        while True:
            raws, more = page.result()
            last = max([e for e in map(event_id, raws) if e is not None], default=after)
            if remaining is not None:
                remaining -= len(raws)
            out_of_time = deadline is not None and time.monotonic() > deadline
            go_on = more and raws and last > after and not out_of_time and (
                remaining is None or remaining > 0)
            if go_on:
                # Fetch the next page while this one is applied.
                page = pool.submit(client.events, last, limit())
            result = apply_page(store, module, raws, total.cursor)
            total.add(result)
            after = last
            if progress:
                progress(module["name"], total.applied + total.skipped + total.unknown
                         + total.rejected)
            if not go_on:
                summary.more = bool(more and raws)
                break
    for field in ("applied", "skipped", "unknown", "rejected", "completed", "cursor"):
        setattr(summary, field, getattr(total, field))
    if total.cursor > start:
        try:
            client.ack(total.cursor)
        except UpstreamError as error:
            # The cursor, not the ack, decides what is applied: a lost ack costs only storage.
            summary.warnings.append(f"could not acknowledge events up to {total.cursor}: "
                                    f"{error.message}")


def check_balance(store, engine, module, summary):
    """Record the module's balance, warn below its minimum, re-run operations it now covers."""
    balance, currency = engine.client(module).balance()
    with store.write():
        store.conn.execute("UPDATE processingmodule SET balance = ?, currency = ?, "
                           "balance_date = ? WHERE id = ?",
                           (str(balance), currency, now(), module["id"]))
    summary.balance, summary.currency = str(balance), currency
    if module["min_balance"]:
        summary.min_balance = module["min_balance"]
        summary.low_balance = balance < decimal.Decimal(module["min_balance"])
    if module["auto_rerun"]:
        summary.rerun = rerun_for_funds(store, engine, module, balance)


def rerun_for_funds(store, engine, module, balance):
    """Re-run operations that failed for want of funds, oldest first, while the balance lasts."""
    left, rerun = balance, 0
    for op in store.all("SELECT id, amount FROM runningoperation WHERE processingmodule = ? "
                        "AND status = 'failed' AND error_type = ? ORDER BY id",
                        (module["id"], errors.BALANCE)):
        amount = _money(op["amount"])
        if amount is None or amount > left:
            continue
        outcome = engine.process(op["id"])
        rerun += 1
        if outcome.status != "failed":
            left -= amount
        elif outcome.error is not None and outcome.error.kind == errors.BALANCE:
            break
    return rerun


def _money(text):
    try:
        return decimal.Decimal(text) if text else None
    except decimal.InvalidOperation:
        return None

"""``checkevent``: one run that keeps every billmanager module's services in step.

One run at a time per store (an advisory lock that dies with its process), bounded work per
run (a change count and a time budget, so a run never overlaps the next cron tick by design).
Each module is kept in step its upstream's way: by its event feed (resellctl.feed) or by
polling and comparing (resellctl.poll); both apply their changes through the one applier.
After that, each module's balance is read, compared with its minimal balance, and operations
that failed for want of funds are re-run, oldest first, as far as it covers them; then
operations stuck on a temporary failure or never sent are re-run, less often after each try;
a manual module's operations left unstarted get their staff tasks.
Each module's run is recorded (resellctl.runlog), with the problems it found, so that
``resellctl status`` can tell how the last runs went and a quiet run tells a problem once.
"""

import contextlib
import dataclasses
import datetime
import decimal
import fcntl
import itertools
import os
import time

from resellctl import errors, feed, runlog
from resellctl.changes import described
from resellctl.errors import LockHeld, ResellError, UpstreamError
from resellctl.events import PageResult
from resellctl.feed import past
from resellctl.poll import Poll
from resellctl.runlog import Problem
from resellctl.states import OpStatus
from resellctl.store import now, when
from resellctl.storefiles import beside, open_private

DEFAULT_BUDGET = 240.0  # seconds: well inside cron's five-minute tick
DEFAULT_ACK_AFTER = 7.0  # days the upstream keeps applied events, for --from after a restore
# Re-running stuck operations: one never sent after five minutes' rest, one tried once after
# ten, each next try after twice the rest before, never more than four hours apart; at most
# so many a module per run.
RETRY_FIRST = datetime.timedelta(minutes=5)
RETRY_LONGEST = datetime.timedelta(hours=4)
RETRY_PER_RUN = 20


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
    foreign: int = 0  # upstream items no service is linked to (polling)
    missing: int = 0  # services whose upstream item is not there (polling)
    new_missing: list = dataclasses.field(default_factory=list)  # found so this run
    changes: list = dataclasses.field(default_factory=list)  # --dry-run: what would be applied
    polled: bool = False  # kept in step by polling, not by a feed
    outcome: str = "ok"  # or "error", or "skipped": the time budget ended before its turn
    retried: int = 0  # stuck operations re-run (a temporary failure, or never sent)
    stuck: int = 0  # operations failed, or not sent for RETRY_FIRST, after the run
    problems: list = dataclasses.field(default_factory=list)  # runlog.Problem, for -q


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
        progress=None, ack_after=DEFAULT_ACK_AFTER, dry_run=False, tell_once=False):
    """Sync every billmanager module (or one); returns a list of ModuleSummary.

    An upstream failure stops its module only: it is recorded in that module's summary and
    the other modules are synced all the same. Each module's run is recorded, but for a
    ``dry_run``; ``tell_once``: the caller prints only the problems due to be told (``-q``),
    which are marked as told.
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
    # A dry run writes nothing, so it neither waits for nor holds up the cron job's lock.
    with contextlib.nullcontext() if dry_run else SyncLock(store.path):
        for module in modules:
            # Read again under the lock: the run that held it may have moved the position.
            module = store.one("SELECT * FROM processingmodule WHERE id = ?", (module["id"],))
            summary = ModuleSummary(module=module["name"], cursor=module["event_cursor"] or 0)
            summaries.append(summary)
            started, clock = now(), time.monotonic()
            if past(deadline):
                # No call runs past the budget: this module waits for the next run.
                summary.warnings.append("not synced: the time budget ran out before its turn")
                summary.outcome = "skipped"
                if not dry_run:
                    record(engine, module, summary, started, 0.0, tell_once)
                continue
            try:
                client = engine.upstreams.client(module)
                if dry_run:
                    summary.changes = preview(engine, client, module, summary, max_events,
                                              deadline)
                    continue
                if client.keeps_in_step == "feed":
                    feed.read(store, client, module, summary, max_events, deadline, from_id,
                              progress)
                    if not past(deadline):
                        feed.acknowledge(store, client, module, summary, ack_after, deadline)
                else:
                    summary.polled = True
                    Poll(engine, client, module, summary, deadline, max_events).run()
                if not past(deadline):
                    check_balance(engine, module, summary, deadline)
                if not past(deadline):
                    retry_stuck(engine, module, summary, deadline)
            except UpstreamError as error:
                summary.error = f"{error.message}" + (f" ({error.hint})" if error.hint else "")
                summary.error_kind = error.kind
                summary.outcome = "error"
            except Exception as error:
                # The books could not be written, say: the run is recorded if they now can be.
                summary.error = error.message if isinstance(error, ResellError) else repr(error)
                summary.error_kind = "local" if isinstance(error, ResellError) else "internal"
                summary.outcome = "error"
                if not dry_run:
                    with contextlib.suppress(Exception):
                        record(engine, module, summary, started, time.monotonic() - clock,
                               tell_once)
                raise
            record(engine, module, summary, started, time.monotonic() - clock, tell_once)
        if module_ref is None and not dry_run and not past(deadline):
            open_manual_tasks(engine)
    return summaries


def open_manual_tasks(engine):
    """Open the tasks of manual modules' operations left ``new`` for RETRY_FIRST (a command
    interrupted between writing one and opening its task), as `ops start` would: under a
    manual module nothing is sent, so nothing is risked. Each says so in its history."""
    moment = when(now())
    for op in engine.store.all(
            "SELECT runningoperation.id, coalesce(runningoperation.mdate, runningoperation.cdate) "
            "AS since FROM runningoperation JOIN processingmodule ON processingmodule.id = "
            "runningoperation.processingmodule WHERE processingmodule.type = 'manual' AND "
            "runningoperation.status = ? ORDER BY runningoperation.id", (OpStatus.NEW,)):
        if _rested(op, RETRY_FIRST, moment):
            engine.process(op["id"])


def preview(engine, client, module, summary, max_events, deadline):
    """What a run would change for ``module``, applying nothing (``--dry-run``)."""
    if client.keeps_in_step == "feed":
        return feed.preview(engine.store, client, module, max_events, deadline)
    found = Poll(engine, client, module, summary, deadline, max_events, dry_run=True).run()
    return [described(item_id, change) for item_id, change in found]


def check_balance(engine, module, summary, deadline):
    """Record the module's balance, warn below its minimum, re-run operations it now covers
    until the run's ``deadline``."""
    store = engine.store
    balance, currency = engine.upstreams.client(module).balance(deadline=deadline)
    if balance is None:
        # An amount the upstream formats in a way not read here: unknown, never a failure.
        summary.warnings.append(f"the balance could not be read ({currency}); it is unknown "
                                "this run")
        return
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


def rerun_for_funds(engine, module, balance, warnings, deadline):
    """Re-run operations that failed for want of funds, oldest first, while the balance lasts.

    The queue is strict: the first operation the balance does not cover stops it, so a large
    old order is not starved by newer cheap ones. It also stops at the first that gets no
    answer: each of the rest would only wait out its own retries, holding the sync lock; and
    at the run's ``deadline``, past which no call may start (one would fail unsent, and leave
    the funds queue). A re-run that fails again is added to ``warnings``: `-q` shows it.
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
        if past(deadline):
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


def retry_stuck(engine, module, summary, deadline):
    """Re-run the module's operations that failed on a temporary error or were never sent (an
    order interrupted by Ctrl-C), as BILLmanager re-runs its own until they succeed: oldest
    first, each once it has rested RETRY_FIRST x 2^(its tries so far) since its last change
    (RETRY_LONGEST at most), RETRY_PER_RUN at most, until the run's ``deadline``. Not for a
    module whose auto re-run is off.

    Each goes through ``Engine.process``, which reads what may have reached the upstream
    before it sends anything again. The first that gets no answer ends the re-runs: each of
    the rest would only wait out its own retries.
    """
    if not module["auto_rerun"]:
        return
    moment = when(now())
    due = (op["id"] for op in engine.store.all(
        "SELECT id, trycount, coalesce(mdate, cdate) AS since FROM runningoperation WHERE "
        "processingmodule = ? AND (status = ? OR (status = ? AND error_type = ?)) ORDER BY id",
        (module["id"], OpStatus.NEW, OpStatus.FAILED, errors.TRANSIENT))
        if _rested(op, _pause(op["trycount"]), moment))
    for op_id in itertools.islice(due, RETRY_PER_RUN):
        if past(deadline):
            break
        outcome = engine.process(op_id, deadline)
        if outcome.status == "busy":
            continue  # another process is sending it
        summary.retried += 1
        if outcome.error is not None and outcome.error.kind == errors.TRANSIENT:
            break


def _pause(trycount):
    """How long an operation tried ``trycount`` times rests before checkevent re-runs it."""
    return min(RETRY_FIRST * 2 ** min(trycount, 8), RETRY_LONGEST)


def _rested(op, pause, moment):
    """Whether ``op`` has been left alone for ``pause`` at ``moment``; a time that cannot be
    read counts as long ago, and so does one after ``moment``: written while the clock ran
    ahead, it would otherwise hold the operation back for as long as the clock was wrong."""
    since = when(op["since"])
    return since is None or since > moment or since + pause <= moment


def record(engine, module, summary, started, seconds, tell_once):
    """Record the module's run and the problems that last after it (``summary.problems``)."""
    store = engine.store
    problems, unseen = [], []
    if summary.low_balance:
        problems.append(Problem("warning", f"balance {summary.balance} {summary.currency} is "
                                f"below the minimum {summary.min_balance}; top up the selling "
                                "account", ("low_balance",)))
    elif summary.balance is None:
        unseen.append("low_balance")  # not read this run: as it was
    problems += [Problem("warning", text, (f"warning:{text}",)) for text in summary.warnings]
    stuck = _stuck(store, module, summary)
    if stuck is not None:
        problems.append(stuck)
    if summary.error:
        problems.append(Problem("error", summary.error, (f"error:{summary.error_kind}",)))
    if summary.outcome != "ok":
        unseen.append("")  # what else is wrong could not be seen: all is kept as it was
    counts = {name: getattr(summary, name) for name in runlog.COUNTS}
    runlog.finish(store, module["id"], {
        "started": started, "seconds": round(seconds, 3), "outcome": summary.outcome, **counts,
        "more": int(summary.more), "error": summary.error, "error_kind": summary.error_kind},
        problems, unseen, told=tell_once)
    summary.problems = problems


def _stuck(store, module, summary):
    """The Problem of the module's operations that failed, or were not sent for RETRY_FIRST;
    None when there are none."""
    moment = when(now())
    rows = store.all("SELECT id, status, error_type, coalesce(mdate, cdate) AS since "
                     "FROM runningoperation WHERE processingmodule = ? AND status IN (?, ?) "
                     "ORDER BY id", (module["id"], OpStatus.FAILED, OpStatus.NEW))
    failed = [op for op in rows if op["status"] == OpStatus.FAILED]
    unsent = [op for op in rows if op["status"] == OpStatus.NEW
              and _rested(op, RETRY_FIRST, moment)]
    summary.stuck = len(failed) + len(unsent)
    if not summary.stuck:
        return None
    parts = ([f"{len(failed)} operation(s) failed ({_ids(failed)})"] if failed else []) + (
        [f"{len(unsent)} not sent for {RETRY_FIRST.seconds // 60} minutes or more "
         f"({_ids(unsent)})"] if unsent else [])
    if module["auto_rerun"]:
        then = ("checkevent re-runs those that failed on a temporary error or were not sent, "
                "less often after each try")
    else:
        then = "checkevent re-runs none of them (auto re-run is off for this module)"
    shown = " and ".join(f"`resellctl ops list --status {status}`" for status, ops in (
        (OpStatus.FAILED, failed), (OpStatus.NEW, unsent)) if ops)
    text = f"{' and '.join(parts)}: see {shown}; {then}, and `resellctl ops start ID` sends one now"
    keys = tuple(f"operation:{op['id']}:{op['error_type'] or op['status']}"
                 for op in failed + unsent)
    return Problem("warning", text, keys)


def _ids(ops, shown=5):
    """``12, 13, 20`` or ``12, 13, 20, 21, 22 and 9 more``."""
    ids = ", ".join(str(op["id"]) for op in ops[:shown])
    return ids + (f" and {len(ops) - shown} more" if len(ops) > shown else "")

"""``resellctl status``: whether all is well, read from the books alone.

What checkevent recorded of its runs (resellctl.runlog), each module's last balance, and the
operations, tasks, events and services of the books, measured against the thresholds of the
configuration file (config.STATUS) and sorted as monitoring plugins sort what they find: ok,
warning or critical. Nothing is asked of an upstream and nothing is written, so that
monitoring may run it every minute. This module knows nothing of click.
"""

import datetime
import decimal
from enum import IntEnum

from resellctl.states import ItemStatus, OpStatus, TaskStatus
from resellctl.store import STAMP, now, when
from resellctl.schema import PROBLEMS

OK, WARNING, CRITICAL = "ok", "warning", "critical"
LEVELS = (OK, WARNING, CRITICAL)  # the least grave first
RUN_FIELDS = ("started", "seconds", "outcome", "applied", "skipped", "unknown", "rejected",
              "completed", "rerun", "retried", "more", "error", "error_kind")


class MonitoringExit(IntEnum):
    """The exit status of `resellctl status`: a monitoring plugin's, one for each level."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


def report(store, limits):
    """The health of the books now: a dict (as ``status --json`` prints it) whose ``status``
    is the worst level among its ``problems``, each ``{level, module, message}`` (worst
    first). ``limits``: the thresholds, ``{name: value}`` as in config.STATUS."""
    check = _Check(store, limits, now())
    modules = [check.module(row) for row in store.all(
        "SELECT * FROM processingmodule WHERE type = 'billmanager' ORDER BY id")]
    if not modules:
        check.problem(WARNING, "no billmanager module yet: no service is kept in step with an "
                               "upstream (resellctl modules add NAME --type billmanager ...)")
    found = {"modules": modules, "operations": check.operations(), "tasks": check.tasks(),
             "events": check.events(), "services": check.services()}
    problems = sorted(check.problems, key=lambda p: -LEVELS.index(p["level"]))
    status = problems[0]["level"] if problems else OK
    return {"status": status, "exit_status": MonitoringExit[status.upper()], "checked": check.stamp,
            "problems": problems, **found, "thresholds": dict(limits)}


def ago(minutes):
    """``42 minutes``, ``5 hours``, ``3 days``: how long ``minutes`` is, roughly."""
    for unit, size, up_to in (("minute", 1, 120), ("hour", 60, 48 * 60), ("day", 24 * 60, None)):
        if up_to is None or minutes < up_to:
            count = int(minutes // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"


def said_ago(minutes):
    """``42 minutes ago``; a time after now (written before the clock was put back) is said to
    be ahead: ``5 hours ahead of the clock``."""
    return f"{ago(minutes)} ago" if minutes >= 0 else f"{ago(-minutes)} ahead of the clock"


class _Check:
    """What one report found so far; each part of the books is read by a method of its own."""

    def __init__(self, store, limits, stamp):
        self.store, self.limits, self.stamp = store, limits, stamp
        self.moment = when(stamp)
        self.problems = []

    def problem(self, level, message, module=None):
        self.problems.append({"level": level, "module": module, "message": message})

    def minutes(self, stamp):
        """How long ago ``stamp`` was, in minutes; None for a time that cannot be read."""
        then = when(stamp)
        return None if then is None else (self.moment - then).total_seconds() / 60

    def said(self, run):
        """When a run that did not end well was, and what it came to, for a sentence."""
        when_ = said_ago(self.minutes(run['started']) or 0)
        if run["outcome"] == "skipped":
            return f"{when_}, was skipped: the time budget ran out before its turn"
        return f"{when_}, failed: {run['error']}"

    def before(self, name, unit):
        """The time the threshold ``name`` (in ``unit``: minutes or hours) reaches back to."""
        return (self.moment - datetime.timedelta(**{unit: self.limits[name]})).strftime(STAMP)

    def oldest(self, sql, args, name, unit):
        """``(count, count past the threshold, the oldest id past it)`` of the rows ``sql``
        selects (``id`` and ``since``, the time it counts from)."""
        rows = self.store.all(f"SELECT count(*), sum(since <= ?), min(CASE WHEN since <= ? "
                              f"THEN id END) FROM ({sql})",
                              (self.before(name, unit), self.before(name, unit), *args))
        count, late, oldest = rows[0]
        return count, late or 0, oldest

    # -- the parts ---------------------------------------------------------------------------

    def module(self, row):
        """One billmanager module: its last run and last successful one, its balance."""
        name = row["name"]
        last = self.store.one("SELECT * FROM syncrun WHERE processingmodule = ? "
                              "ORDER BY id DESC LIMIT 1", (row["id"],))
        ok = self.store.one("SELECT started FROM syncrun WHERE processingmodule = ? AND "
                            "outcome = 'ok' ORDER BY id DESC LIMIT 1", (row["id"],))
        since = self.minutes(ok["started"] if ok else row["cdate"])
        level = next((level for level in (CRITICAL, WARNING)
                      if since is None or since >= self.limits[f"sync_{level}_minutes"]), None)
        if since is not None and since < 0:
            # Dated after now: the clock has been put back since, and how long ago the module
            # last synced cannot be told; silence here would hide a checkevent that stopped.
            what = "its last successful sync" if ok else "it was added and never synced, and"
            self.problem(WARNING, f"{what} is dated {said_ago(since)}: has the clock been put "
                                  "back? How long it has gone unsynced cannot be told until "
                                  "checkevent syncs it again", name)
        elif level is not None:
            what = (f"no successful sync for {ago(since)}" if ok else
                    f"never synced since it was added {ago(since)} ago" if since is not None
                    else "never synced")
            message = f"{what} ({level} after {self.limits[f'sync_{level}_minutes']:g} minutes)"
            if last is None:
                message += "; checkevent has never run for it: is it in cron? (crontab.example)"
            elif last["outcome"] != "ok":
                message += f"; its last run, {self.said(last)}"
            self.problem(level, message, name)
        elif last is not None and last["outcome"] == "error":
            self.problem(WARNING, f"its last sync, {self.said(last)}", name)
        low = _below(row["balance"], row["min_balance"])
        if low:
            read = self.minutes(row["balance_date"])
            self.problem(WARNING, f"balance {row['balance']} {row['currency'] or ''} is below "
                                  f"its minimum {row['min_balance']}"
                                  + (f" (read {said_ago(read)})" if read is not None else "")
                                  + ": top up the selling account", name)
        return {"name": name, "api": row["api"], "auto_rerun": bool(row["auto_rerun"]),
                "last_run": None if last is None else {
                    **{f: last[f] for f in RUN_FIELDS},
                    "minutes_ago": _rounded(self.minutes(last["started"]))},
                "last_ok": ok["started"] if ok else None,
                "minutes_since_ok": _rounded(since) if ok else None,
                "balance": row["balance"], "currency": row["currency"],
                "min_balance": row["min_balance"], "balance_date": row["balance_date"],
                "low_balance": low}

    def operations(self):
        """Operations failed, not sent, and waiting upstream longer than expected."""
        ops = "SELECT id, coalesce(mdate, cdate) AS since FROM runningoperation WHERE status = ?"
        failed = self.store.one("SELECT count(*), min(id) FROM runningoperation "
                                "WHERE status = ?", (OpStatus.FAILED,))
        if failed[0]:
            self.problem(WARNING, f"{failed[0]} operation(s) failed, the oldest {failed[1]}: see "
                                  "`resellctl ops list --status failed`")
        new, new_late, new_oldest = self.oldest(ops, (OpStatus.NEW,), "new_warning_minutes",
                                                "minutes")
        if new_late:
            self.problem(WARNING, f"{new_late} operation(s) not sent for over "
                                  f"{self.limits['new_warning_minutes']:g} minutes, the oldest "
                                  f"{new_oldest}: see `resellctl ops list --status new`")
        # A manual module's waiting operations are its open tasks, told below.
        waiting, late, oldest = self.oldest(
            ops + " AND processingmodule IN (SELECT id FROM processingmodule WHERE type = "
            "'billmanager')", (OpStatus.WAITING,), "waiting_warning_hours", "hours")
        if late:
            self.problem(WARNING, f"{late} operation(s) waiting upstream for over "
                                  f"{self.limits['waiting_warning_hours']:g} hours, the oldest "
                                  f"{oldest}: their change has not come back; see `resellctl "
                                  f"ops show {oldest}`")
        return {"failed": failed[0], "new": new, "new_late": new_late, "waiting": waiting,
                "waiting_late": late}

    def tasks(self):
        """Tasks for staff: those of operations under a manual module."""
        count, late, oldest = self.oldest(
            "SELECT task.id AS id, task.opendate AS since FROM task JOIN runningoperation ON "
            "runningoperation.id = task.runningoperation JOIN processingmodule ON "
            "processingmodule.id = runningoperation.processingmodule WHERE task.status = ? "
            "AND processingmodule.type = 'manual'", (TaskStatus.OPEN,), "task_warning_hours",
            "hours")
        if late:
            self.problem(WARNING, f"{late} task(s) for staff open for over "
                                  f"{self.limits['task_warning_hours']:g} hours, the oldest "
                                  f"{oldest}: see `resellctl tasks list --status open`")
        return {"open": count, "open_late": late}

    def events(self):
        """Events that could not be applied: all of them, and those received lately."""
        total = recent = 0
        since = self.before("problem_events_hours", "hours")
        for outcome in PROBLEMS:  # each on its partial index, its outcome written in the query
            count, fresh = self.store.one("SELECT count(*), sum(received >= ?) FROM eventlog "
                                          f"WHERE outcome = '{outcome}'", (since,))
            total, recent = total + count, recent + (fresh or 0)
        if recent:
            self.problem(WARNING, f"{recent} event(s) could not be applied in the last "
                                  f"{self.limits['problem_events_hours']:g} hours ({total} in "
                                  "all): see `resellctl events list --problem`")
        return {"problem": total, "problem_recent": recent}

    def services(self):
        """Services whose upstream item is not there any more (found by polling)."""
        count, first = self.store.one("SELECT count(*), min(id) FROM item WHERE missing IS NOT "
                                      "NULL AND status != ?", (ItemStatus.DELETED,))
        if count:
            self.problem(WARNING, f"{count} service(s) missing upstream: their item is not "
                                  f"there any more; see `resellctl services show {first}`")
        return {"missing": count}


def _rounded(minutes):
    return None if minutes is None else round(minutes, 1)


def _below(balance, minimum):
    """Whether ``balance`` is below ``minimum``; None when either is unknown or no amount."""
    if not balance or not minimum:
        return None
    try:
        return decimal.Decimal(balance) < decimal.Decimal(minimum)
    except decimal.DecimalException:
        return None

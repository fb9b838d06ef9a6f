"""What checkevent keeps about its own runs: a record of each run of each module, which
``resellctl status`` reads, and the problems it has seen, so that a quiet run (cron's) tells a
problem when it appears and then at most once a day while it lasts.

Only this module writes the tables ``syncrun`` and ``notice``. It knows nothing of click.
"""

import dataclasses
import datetime

from resellctl.store import when

KEEP_RUNS = 2016  # runs kept per module: a week of five-minute runs
TELL_AGAIN = datetime.timedelta(days=1)  # a problem that lasts is told again after this long
COUNTS = ("applied", "skipped", "unknown", "rejected", "completed", "rerun", "retried")


@dataclasses.dataclass
class Problem:
    """A problem that lasts, as checkevent tells it: ``level`` (warning or error) and ``text``
    about one module; ``keys`` name what it is about (one problem may be about several
    operations), and ``tell`` says whether a quiet run tells it this time."""

    level: str
    text: str
    keys: tuple
    tell: bool = True


def finish(store, module_id, run, problems, unseen=(), told=False):
    """Record one module's run and what it found wrong, in one transaction.

    ``run``: the syncrun row (``started``, ``seconds``, ``outcome``, the counts, ``more``,
    ``error``, ``error_kind``). ``problems``: the Problems found; each one's ``tell`` is set
    here: true when one of its keys is new, or was last told a day ago or more. ``unseen``:
    prefixes of the keys this run could not see (a balance not read, a module not synced):
    those are kept as they are, where any other key not found is forgotten, so that a problem
    that comes back is told again. ``told``: this run tells what is due (``-q``), so it is
    marked as told now.
    """
    stamp = run["started"]
    moment = _moment(stamp)
    with store.write() as conn:
        conn.execute(f"INSERT INTO syncrun (processingmodule, {', '.join(run)}) "
                     f"VALUES (?, {', '.join('?' * len(run))})", (module_id, *run.values()))
        conn.execute("DELETE FROM syncrun WHERE processingmodule = ? AND id <= (SELECT id FROM "
                     "syncrun WHERE processingmodule = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                     (module_id, module_id, KEEP_RUNS))
        # What a removed module left: a module added later may be given its id.
        for table in ("syncrun", "notice"):
            conn.execute(f"DELETE FROM {table} WHERE processingmodule NOT IN "
                         "(SELECT id FROM processingmodule)")
        known = {row[0]: row[1] for row in conn.execute(
            "SELECT key, told FROM notice WHERE processingmodule = ?", (module_id,))}
        found = {key for problem in problems for key in problem.keys}
        gone = [key for key in known if key not in found and not key.startswith(tuple(unseen))]
        conn.executemany("DELETE FROM notice WHERE processingmodule = ? AND key = ?",
                         [(module_id, key) for key in gone])
        conn.executemany("INSERT INTO notice (processingmodule, key, first_seen) VALUES (?, ?, ?)",
                         [(module_id, key, stamp) for key in found if key not in known])
        for problem in problems:
            problem.tell = any(_due(known.get(key), moment) for key in problem.keys)
            if told and problem.tell:
                conn.executemany("UPDATE notice SET told = ? WHERE processingmodule = ? AND "
                                 "key = ?", [(stamp, module_id, key) for key in problem.keys])


def _due(told, moment):
    """Whether a problem last told at ``told`` (None: never) is told again at ``moment``. A
    telling dated after ``moment`` was written while the clock ran ahead: waiting for the clock
    to pass it again would keep a lasting problem quiet for as long as the clock was wrong."""
    return told is None or not _moment(told) <= moment < _moment(told) + TELL_AGAIN


def _moment(stamp):
    """``when(stamp)``, or the distant past for a time that cannot be read: a problem whose
    telling cannot be dated is told again."""
    return when(stamp) or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)

"""The one owner of every status: of operations, tasks and services, and the named transitions
between them.

No other module writes a ``status`` column (a test holds the code to it). Each transition is a
function called inside the caller's ``store.write()`` transaction, taking the connection and
the time stamp the caller writes with the rest of its change. docs/architecture.md shows the
life of an operation these functions walk.
"""

import enum
import json


class OpStatus(enum.StrEnum):
    """A running operation's status."""

    NEW = "new"  # written, not yet sent (or its sending was interrupted)
    WAITING = "waiting"  # accepted: in the upstream's (or staff's) hands, its task open
    FAILED = "failed"  # refused or unanswered; its error history says why
    DONE = "done"
    CANCELLED = "cancelled"  # given up by an admin, or an order closed before it was sent


# Operations still in progress: a service has at most one of these at a time.
PENDING = (OpStatus.NEW, OpStatus.WAITING, OpStatus.FAILED)
# Operations an admin may (re)start.
STARTABLE = (OpStatus.NEW, OpStatus.FAILED)


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ItemStatus(enum.IntEnum):
    """A service's status code, as BILLmanager numbers them."""

    ORDERED = 1
    ACTIVE = 2
    SUSPENDED = 3
    DELETED = 4
    PROCESSING = 5

    @property
    def label(self):
        return self.name.lower()


def item_label(code):
    """``2`` as ``active``; a code that is none of ours as itself."""
    try:
        return ItemStatus(code).label
    except ValueError:
        return str(code)


# --- operations ------------------------------------------------------------------------------

def new_operation(conn, item, kind, params, desc, module_id, mark, stamp):
    """Write a new operation (status new) asking for ``kind`` on ``item``; its id.
    ``mark``: the event log's last id now (events logged after it may be its own)."""
    return conn.execute(
        "INSERT INTO runningoperation (desc, item, itemtype, client, cdate, mdate, trycount, "
        "processingmodule, status, operation, params, eventlog_mark) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        (desc, item["id"], item["itemtype"], item["client"], stamp, stamp, module_id,
         OpStatus.NEW, kind, json.dumps(params, sort_keys=True), mark)).lastrowid


def sending(conn, op_id, baseline, first, stamp):
    """The operation's request is about to leave: it may reach the upstream from now on.
    ``first``: the first try of this processing, which counts in ``trycount``."""
    conn.execute("UPDATE runningoperation SET reached = 1, baseline = ?, mdate = ?, "
                 "sentdate = coalesce(sentdate, ?), trycount = trycount + ? WHERE id = ?",
                 (baseline, stamp, stamp, int(first), op_id))


def not_sent(conn, op_id):
    """The try provably did nothing upstream (refused, or never left), and none before it
    reached the upstream: the operation is safe to send again."""
    conn.execute("UPDATE runningoperation SET reached = 0, sentdate = NULL WHERE id = ?",
                 (op_id,))


def accepted(conn, op_id, task_id, done, stamp):
    """The upstream (or a manual module) took the operation: waiting on task ``task_id``, or
    ``done`` at once when its change was applied already."""
    conn.execute("UPDATE runningoperation SET status = ?, task = ?, mdate = ?, error_type = NULL, "
                 "error_message = NULL, amount = NULL WHERE id = ?",
                 (OpStatus.DONE if done else OpStatus.WAITING, task_id, stamp, op_id))


def failed(conn, op_id, error_type, message, stamp, amount=None, deficit=None, counted=True):
    """The operation failed; the error joins its history. False when it was done meanwhile
    (its change was applied while the request was under way), which nothing undoes.
    ``counted``: its try was counted when it was sent; a try that failed before that counts
    here."""
    if not conn.execute(
            "UPDATE runningoperation SET status = ?, mdate = ?, error_type = ?, "
            "error_message = ?, amount = ?, trycount = trycount + ? WHERE id = ? AND status != ?",
            (OpStatus.FAILED, stamp, error_type, message, amount, 0 if counted else 1, op_id,
             OpStatus.DONE)).rowcount:
        return False
    conn.execute("INSERT INTO runningoperation_error (runningoperation, date, type, message, "
                 "amount, deficit) VALUES (?, ?, ?, ?, ?, ?)",
                 (op_id, stamp, error_type, message, amount, deficit))
    return True


def open_failed(conn, op_id, message, stamp):
    """An order's opening failed upstream (``openfail``): the item is gone and refunded, so
    the order is safe to send again."""
    failed(conn, op_id, "openfail", message, stamp)
    not_sent(conn, op_id)


def done(conn, op_id, stamp):
    conn.execute("UPDATE runningoperation SET status = ?, mdate = ? WHERE id = ?",
                 (OpStatus.DONE, stamp, op_id))


def cancelled(conn, op_id, was, stamp):
    """Give the operation up; False when it is no longer in status ``was`` (its change came
    meanwhile)."""
    return bool(conn.execute("UPDATE runningoperation SET status = ?, mdate = ? "
                             "WHERE id = ? AND status = ?",
                             (OpStatus.CANCELLED, stamp, op_id, was)).rowcount)


# --- tasks -----------------------------------------------------------------------------------

def new_task(conn, task_type, item, op_id, stamp, closed_by=None):
    """The task that follows operation ``op_id``; closed at once by ``closed_by`` when its
    change was applied already. Its id."""
    return conn.execute(
        "INSERT INTO task (type, item, itemstatus, itemtype, pricelist, client, "
        "runningoperation, opendate, status, closedate, closedby) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (task_type, item["id"], item["status"], item["itemtype"], item["pricelist"],
         item["client"], op_id, stamp, TaskStatus.OPEN if closed_by is None else TaskStatus.CLOSED,
         None if closed_by is None else stamp, closed_by)).lastrowid


def task_closed(conn, task_id, by, stamp, note=None):
    """Close an open task; False when it was closed already."""
    return bool(conn.execute(
        "UPDATE task SET status = ?, closedate = ?, closedby = ?, note = coalesce(?, note) "
        "WHERE id = ? AND status = ?",
        (TaskStatus.CLOSED, stamp, by, note, task_id, TaskStatus.OPEN)).rowcount)


# --- services --------------------------------------------------------------------------------

def new_item(conn, client, tariff, module_id, period, stamp):
    """A service just ordered (status ordered); its id."""
    return conn.execute(
        "INSERT INTO item (client, pricelist, itemtype, status, processingmodule, period, "
        "cdate, mdate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (client, tariff["id"], tariff["itemtype"], ItemStatus.ORDERED, module_id, period, stamp,
         stamp)).lastrowid


def item_status(conn, item_id, status, stamp):
    conn.execute("UPDATE item SET status = ?, mdate = ? WHERE id = ?",
                 (ItemStatus(status), stamp, item_id))


def linked(conn, item_id, module_id, upstream_id, stamp):
    """The service is upstream item ``upstream_id`` of module ``module_id``; an ordered one is
    processing from now on."""
    conn.execute("UPDATE item SET upstream_id = ?, upstream_module = ?, mdate = ?, "
                 "status = CASE WHEN status = ? THEN ? ELSE status END WHERE id = ?",
                 (str(upstream_id), module_id, stamp, ItemStatus.ORDERED,
                  ItemStatus.PROCESSING, item_id))


def unlinked(conn, item_id, stamp):
    """Its upstream item is gone before it ever opened (``openfail``): ordered again."""
    conn.execute("UPDATE item SET upstream_id = NULL, upstream_module = NULL, status = ?, "
                 "mdate = ? WHERE id = ?", (ItemStatus.ORDERED, stamp, item_id))

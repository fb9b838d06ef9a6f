"""Applying changes (resellctl.changes) to the books: the service's fields, its history, and
the operation the change completes, with its task.

One applier serves every source of changes (the event feed, polling, a closed manual task), so
a change means the same wherever it was found. It works inside its caller's transaction and
gathers the rows it writes in batches: a backlog of changes costs a few statements a page,
not a few a change.
"""

import itertools
import sqlite3

from resellctl import states
from resellctl.kinds import COMPLETES, KINDS
from resellctl.changes import TYPES
from resellctl.printable import one_line
from resellctl.states import OpStatus

# What applying a change reads of a service: fewer columns make a page's lookups cheaper.
ITEM_COLUMNS = ("item.id, item.itemtype, item.status, item.expiredate, item.pricelist, "
                "item.upstream_id, item.upstream_module")

_NONE = (None, True)  # a change that completes no kind

CHUNK = 500  # ids per lookup


def insert_rows(conn, head, rows, tail=""):
    """``head (...), (...) tail`` for ``rows``: a statement of many rows costs SQLite far less
    than a statement per row (executemany), which a backlog would pay for every change."""
    if not rows:
        return
    group = "(" + ",".join("?" * len(rows[0])) + ")"
    # As many rows a statement as the connection may bind values: 32,766 since SQLite 3.32,
    # 999 before.
    per_statement = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0])
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        conn.execute(f"{head} {','.join([group] * len(chunk))} {tail}",
                     list(itertools.chain.from_iterable(chunk)))


def _shows_done(kind, change, op):
    """Whether ``change`` shows the operation ``op`` of ``kind`` done. A relative change (a
    renewal) does only with an expiry past the one read before it was sent: an expiry moved
    back, from the feed or seen by polling, is applied to the books but completes no renewal
    the customer paid for and the upstream has not applied. An operation sent before that
    expiry was kept has none to compare with, and is done as before."""
    baseline = op["baseline"]
    if not KINDS[kind].needs_baseline or baseline is None:
        return True
    return bool(change.expiredate) and change.expiredate > baseline


class Services:
    """The services of one module met so far, by upstream item id, kept from page to page.

    A backlog names the same services page after page. The rows stay true while no other
    connection writes to the store (``PRAGMA data_version``, read inside each page's
    transaction); after any such write they are read again.
    """

    LIMIT = 20_000  # rows; past it the cache starts over, so memory stays bounded

    def __init__(self):
        self.rows, self.version = {}, None

    def refresh(self, conn):
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version or len(self.rows) > self.LIMIT:
            self.rows.clear()
            self.version = version


class Applier:
    """Applies the changes of one upstream module, inside the caller's transaction.

    ``source`` names where the changes came from in the service's history (``event``,
    ``poll``, ``task``), and ``who`` the person who made them, if one did (a closed task).
    Call ``flush()`` before the transaction ends.
    """

    def __init__(self, conn, module_id, stamp, services=None, source="event", who=None):
        self.conn, self.module_id, self.stamp, self.source = conn, module_id, stamp, source
        self.who = who
        self.services = {} if services is None else services  # upstream item id -> row
        self.unlinked = []  # upstream item ids whose service was unlinked here
        self.history, self.params, self.addons = [], [], []
        self.tariffs = {}
        self.applied = self.completed = 0

    def items(self, changes):
        """The services the ``changes`` name, by upstream item id: those not met before are
        read, in a few queries."""
        found = self.services
        wanted = sorted({c.item for c in changes}.difference(found))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT {ITEM_COLUMNS} FROM item WHERE upstream_module = ? "
                    f"AND upstream_id IN ({marks})", (self.module_id, *chunk)):
                found[row["upstream_id"]] = dict(row)
        return found

    def pending(self, item_ids):
        """Unfinished operations of this module for these services: {(item, kind): op}."""
        pending = {}
        ids = sorted(item_ids)
        marks_status = ",".join("?" * len(states.PENDING))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    "SELECT id, item, operation, status, task, baseline FROM runningoperation "
                    f"WHERE status IN ({marks_status}) AND item IN ({marks}) "
                    "AND processingmodule = ? ORDER BY id DESC",
                    (*states.PENDING, *chunk, self.module_id)):
                pending[(row["item"], row["operation"])] = row
        return pending

    def by_remoteid(self, change):
        """The service of a change that arrived before its order's answer was recorded, by
        our remoteid; it is linked to the change's item. None when there is none."""
        if not change.remoteid:
            return None
        row = self.conn.execute(
            f"SELECT {ITEM_COLUMNS} FROM item JOIN pricelist ON pricelist.id = item.pricelist "
            "WHERE item.remoteid = ? AND pricelist.processingmodule = ? AND "
            "(item.upstream_id IS NULL OR item.upstream_id = ?)",
            (change.remoteid, self.module_id, change.item)).fetchone()
        if row is None:
            return None
        row = dict(row)
        if row["upstream_id"] is None:
            states.linked(self.conn, row["id"], self.module_id, change.item, self.stamp)
            row.update(upstream_id=change.item, upstream_module=self.module_id)
        self.services[change.item] = row
        return row

    def apply(self, change, row, pending, label, closed_by=None):
        """Apply ``change`` to the service ``row`` (kept up to date), complete the operation of
        ``pending`` ({(item, kind): op}) it completes, and write the history line that starts
        with ``label``. ``closed_by`` names the closer of a completed operation's task (by
        default the change's event). Returns the id of the operation it completed, or None."""
        item_id = row["id"]
        kind, succeeded = COMPLETES.get(change.type, _NONE)
        if change.type != "openfail":
            changes = self._fields(change, row, item_id)
        elif row["status"] in (states.ItemStatus.ORDERED, states.ItemStatus.PROCESSING):
            changes = self._unlinked(change, row, item_id)
        else:
            # A service that opened is not refunded and gone: unlinked, it would be closed in
            # the books alone, its upstream item left running (and charged).
            changes = ["opening failed upstream" + (f" ({change.msg})" if change.msg else "")
                       + f": not applied, the service is {states.item_label(row['status'])}"]
            kind = None
        op = pending.pop((item_id, kind), None) if kind else None
        if op is not None and not _shows_done(kind, change, op):
            pending[(item_id, kind)] = op
            op = None
        if op is not None and (op["status"] == OpStatus.WAITING or kind == "open"):
            if succeeded:
                states.done(self.conn, op["id"], self.stamp)
                self.completed += 1
            else:
                states.open_failed(self.conn, op["id"],
                                   one_line(change.msg or "opening failed upstream"), self.stamp)
            if op["task"]:
                states.task_closed(self.conn, op["task"], closed_by or f"event {change.id}",
                                   self.stamp)
            changes.append(f"operation {op['id']} {'done' if succeeded else 'failed'}")
        elif op is not None:
            pending[(item_id, kind)] = op  # failed or new: its own restart completes it
            op = None
        self.applied += 1
        # One line, whatever the upstream's message, parameters or tariff names hold.
        text = label + ": " + "; ".join(changes) if changes else label
        self.history.append((item_id, self.stamp, self.source, change.id,
                             op["id"] if op else None,
                             text if text.isprintable() else one_line(text), self.who))
        return op["id"] if op else None

    def _unlinked(self, change, row, item_id):
        """Refunded and gone upstream (``openfail``): unlinked, so that `ops start` orders it
        again."""
        states.unlinked(self.conn, item_id, self.stamp)
        self.unlinked.append(row["upstream_id"])
        row.update(upstream_id=None, status=states.ItemStatus.ORDERED)
        return ["opening failed upstream" + (f": {change.msg}" if change.msg else "")]

    def _fields(self, change, row, item_id):
        """Write the change's fields to the service; what changed, in words."""
        conn, stamp = self.conn, self.stamp
        changes = []
        status = change.status or TYPES[change.type][0]
        if status is not None and status != row["status"]:
            states.item_status(conn, item_id, status, stamp)
            changes.append(f"status {row['status']} -> {int(status)}")
            row["status"] = status
        if change.expiredate and change.expiredate != row["expiredate"]:
            conn.execute("UPDATE item SET expiredate = ?, mdate = ? WHERE id = ?",
                         (change.expiredate, stamp, item_id))
            changes.append(f"expires {change.expiredate}")
            row["expiredate"] = change.expiredate
        addons = change.addons
        if change.pricelist:
            local, name, itemtype = self._tariff(change.pricelist)
            if local is None:
                changes.append(f"tariff {change.pricelist} is not imported here "
                               "(resellctl tariffs import)")
            elif itemtype != row["itemtype"]:
                # It would make a vds a hosting in the books; nor are its resources this
                # service's.
                changes.append(f"tariff {name} sells {itemtype}, not {row['itemtype']}: "
                               "not applied")
                addons = None
            elif local != row["pricelist"]:
                conn.execute("UPDATE item SET pricelist = ?, mdate = ? WHERE id = ?",
                             (local, stamp, item_id))
                changes.append(f"tariff {name}")
                row["pricelist"] = local
        params = change.params
        if params:
            self.params += [(item_id, k, v) for k, v in params.items()]
            changes.append(", ".join([f"{k}={v}" for k, v in params.items()]))
        if addons:
            self.addons += [(item_id, k, v) for k, v in addons.items()]
            changes.append("resources " + ", ".join([f"{k}={v}" for k, v in addons.items()]))
        if change.msg:
            changes.append(f"reason: {change.msg}")
        return changes

    def _tariff(self, remote_id):
        """The local tariff (id, name, item type) of an upstream tariff id; Nones if it is not
        imported."""
        if remote_id not in self.tariffs:
            row = self.conn.execute("SELECT id, name, itemtype FROM pricelist WHERE "
                                    "processingmodule = ? AND remote_id = ?",
                                    (self.module_id, remote_id)).fetchone()
            self.tariffs[remote_id] = tuple(row) if row else (None, None, None)
        return self.tariffs[remote_id]

    def flush(self):
        """Write the gathered history, parameters and resources; forget the unlinked."""
        for upstream_id in self.unlinked:
            # Found by that id no longer: the next page looks again, as the store answers.
            self.services.pop(upstream_id, None)
        insert_rows(self.conn, "INSERT INTO itemhistory (item, date, source, event, "
                    "runningoperation, message, who) VALUES", self.history)
        for table, rows in (("itemparam", self.params), ("itemaddon", self.addons)):
            insert_rows(self.conn, f"INSERT INTO {table} (item, name, value) VALUES", rows,
                        "ON CONFLICT (item, name) DO UPDATE SET value = excluded.value")
        self.unlinked, self.history, self.params, self.addons = [], [], [], []

"""Keeping services in step by polling and comparing: the way of an upstream without a feed
(the ``bm6`` and ``bm5`` dialects; docs/protocol.md, "Keeping services in step").

A run lists the account's services, type by type and page by page, and compares each row with
the service linked to it. It reads a service's form (``<itemtype>.edit``) only where needed: its
row differs from the books, an operation of it waits, it is missing from the lists, or its turn
has come in a rotation that compares every service within a week of runs. Each difference is a
Change (resellctl.changes) applied by the one applier the feed uses too, so a change found by
polling completes operations, closes tasks and writes history exactly as its event would.

Comparing is idempotent: the differences are taken against the books inside the transaction
that applies them, so a run killed at any point and run again applies each one once.
"""

import dataclasses
import math
import time

from resellctl import compare, errors
from resellctl.applier import Applier
from resellctl.errors import UpstreamError
from resellctl.feed import _no_cycle_collection
from resellctl.states import ItemStatus, OpStatus
from resellctl.store import now

PAGE = 1000  # rows per list request
# A week of five-minute runs: every service is read once in that many. The rotation finds only
# what no list shows (parameters beyond the list's columns, resources), which changes seldom;
# over a day, its share was three forms read for each list page at 100,000 services, most of
# the requests of a run that found nothing to change.
ROTATION_RUNS = 2016
MIN_SHARE = 20  # forms read per run for the rotation, at the least
BATCH = 200  # services read, then applied in one transaction
CHUNK = 500  # upstream ids per query, well below SQLite's oldest limit of 999 variables
MALFORMED_PER_RUN = 3  # malformed forms taken as their services' own; one more fails the run


@dataclasses.dataclass
class Found:
    """One service to read, and what the list showed of it."""

    item: int
    upstream_id: str
    itemtype: str
    row: dict | None  # its list row, or None when the lists did not show it


class Poll:
    """One polling run of one module; ``summary`` (a ModuleSummary) gathers its counts."""

    def __init__(self, engine, client, module, summary, deadline=None, max_changes=None,
                 dry_run=False):
        self.store, self.client, self.module = engine.store, client, module
        self.summary, self.deadline = summary, deadline
        self.budget = self.max_changes = max_changes
        self.dry_run = dry_run
        self.seen = set()  # upstream ids the lists showed
        self.wanted = {}  # upstream id -> Found
        self.complete_types = set()  # item types listed to their end
        self.malformed = 0  # forms read this run that came malformed

    def run(self):
        """List, compare, read where needed, apply. Returns the changes described, in order
        (for --dry-run and the log)."""
        # A list page is a tree of thousands of dicts that reference counting frees, as the
        # feed's pages of events are: the cyclic collector would only walk it again and again.
        with _no_cycle_collection():
            for itemtype in self._itemtypes():
                if self._out_of_time():
                    break
                self._list(itemtype)
        self._waiting()
        self._missing()
        self._rotation()
        return self._read_and_apply()

    def _out_of_time(self):
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.summary.more = True
            return True
        return False

    # -- what to read ------------------------------------------------------------------------

    def _itemtypes(self):
        return itemtypes(self.store, self.module["id"])

    def _list(self, itemtype):
        for page in self.client.pages(itemtype, PAGE):
            books = self._books(page, itemtype)
            for row in page:
                upstream_id = row["id"]
                service = books.get(upstream_id)
                if service is None:
                    # Only counted: what the books keep grows with the books, not with
                    # whatever the upstream lists.
                    self.summary.foreign += 1
                    continue
                self.seen.add(upstream_id)
                # A service found missing upstream, listed again: its form clears the mark.
                if _differs(row, service) or service[5]:
                    self.wanted[upstream_id] = Found(service[0], upstream_id, itemtype, row)
            if self._out_of_time():
                return
        self.complete_types.add(itemtype)

    def _books(self, page, itemtype):
        """The linked services of ``itemtype`` a list page shows, by upstream id: ``(id, status,
        expiredate, (its tariff's upstream id, its name), {parameter: value}, missing)``, of the
        parameters only those the page shows as columns. A row of another type's list is not
        the service, whatever its id: that list's forms would answer for another item, or
        for none."""
        ids = [row["id"] for row in page]
        shown = {name for row in page for name in row["columns"]}
        books = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            services = {}
            for item_id, upstream_id, status, expiredate, remote_id, name, missing in (
                    self._tuples(
                        "SELECT item.id, item.upstream_id, item.status, item.expiredate, "
                        "pricelist.remote_id, pricelist.name, item.missing FROM item LEFT JOIN "
                        "pricelist ON pricelist.id = item.pricelist WHERE item.upstream_module = ? "
                        "AND item.itemtype = ? AND item.upstream_id IN "
                        f"({','.join('?' * len(chunk))})", (self.module["id"], itemtype, *chunk))):
                services[item_id] = books[upstream_id] = (item_id, status, expiredate,
                                                          (remote_id, name), {}, missing)
            if shown and services:
                for item_id, name, value in self._tuples(
                        "SELECT item, name, value FROM itemparam WHERE item IN "
                        f"({','.join('?' * len(services))})", tuple(services)):
                    if name in shown:
                        services[item_id][4][name] = value
        return books

    def _tuples(self, sql, args):
        """A query's rows as plain tuples, not rows by name: for the queries of every service."""
        cursor = self.store.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, args)

    def _linked(self, where, args=()):
        return self._tuples(
            "SELECT id, upstream_id, itemtype FROM item WHERE upstream_module = ? AND "
            f"upstream_id IS NOT NULL AND {where}", (self.module["id"], *args))

    def _want(self, item_id, upstream_id, itemtype):
        if upstream_id not in self.wanted:
            self.wanted[upstream_id] = Found(item_id, upstream_id, itemtype, None)

    def _waiting(self):
        """Services with an operation waiting upstream: read whatever their rows show."""
        for row in self._linked("id IN (SELECT item FROM runningoperation WHERE status = ? "
                                "AND processingmodule = ?)", (OpStatus.WAITING,
                                                              self.module["id"])):
            self._want(*row)

    def _missing(self):
        """Services the lists of a type listed to its end did not show: their forms decide."""
        types = sorted(self.complete_types)
        if not types:
            return
        for row in self._linked(f"status != ? AND itemtype IN ({','.join('?' * len(types))})",
                                (ItemStatus.DELETED, *types)):
            if row[1] not in self.seen:
                self._want(*row)

    def _rotation(self):
        """The services compared longest ago, so each is compared within ROTATION_RUNS runs."""
        count = self.store.one("SELECT count(*) FROM item WHERE upstream_module = ?",
                               (self.module["id"],))[0]
        share = max(MIN_SHARE, math.ceil(count / ROTATION_RUNS))
        for row in self._linked("status != ? ORDER BY compared IS NOT NULL, compared, id "
                                "LIMIT ?", (ItemStatus.DELETED, share)):
            self._want(*row)

    # -- reading and applying ------------------------------------------------------------------

    def _read_and_apply(self):
        described = []
        found = list(self.wanted.values())
        for start in range(0, len(found), BATCH):
            if self._out_of_time() or (self.budget is not None and self.budget <= 0):
                self.summary.more = True
                break
            views, gone = {}, {}
            for entry in found[start:start + BATCH]:
                try:
                    views[entry.upstream_id] = (entry, self.client.edit_read(
                        entry.itemtype, entry.upstream_id))
                except UpstreamError as error:
                    if error.kind == errors.TRANSIENT and (
                            error.type != errors.MALFORMED or self._malformed_too_often()):
                        raise
                    if error.type in ("missed", "missing"):
                        gone[entry.upstream_id] = (entry, error)
                    else:
                        self.summary.warnings.append(
                            f"service {entry.item}: its upstream item {entry.upstream_id} "
                            f"could not be read ({error.message}); compared next run")
                if self._out_of_time():
                    break
            described += self._apply(views, gone)
        return described

    def _apply(self, views, gone):
        """Apply what the forms show, in one transaction; with ``dry_run``, only say what."""
        if self.dry_run:
            for entry, error in gone.values():
                self._gone(self.store.conn, None, entry, error)
            return [(entry.item, change) for entry, view in views.values()
                    for change in self._changes_of(self.store.conn, entry, view)[1]]
        described = []
        with self.store.write():
            conn, stamp = self.store.conn, now()
            applier = Applier(conn, self.module["id"], stamp, source="poll")
            pending = applier.pending([entry.item for entry, _ in views.values()])
            for entry, view in views.values():
                row, changes = self._changes_of(conn, entry, view, pending)
                if row is None:
                    continue  # unlinked or relinked meanwhile
                if (self.budget is not None and len(changes) > self.budget
                        and self.budget < self.max_changes):
                    # All of a service's changes or none (but the first service's, which may
                    # hold more than the budget): one compared is all in step.
                    self.summary.more = True
                    break
                for change in changes:
                    described.append((entry.item, change))
                    applier.apply(change, row, pending, f"{change.type} (seen upstream)",
                                  closed_by="upstream")
                    self._log(conn, stamp, row["id"], change)
                if self.budget is not None:
                    self.budget -= len(changes)
                if row["missing"]:
                    self.store.add_history(entry.item, f"upstream item {entry.upstream_id} is "
                                           "there again: no longer missing upstream",
                                           source="poll", date=stamp)
                conn.execute("UPDATE item SET compared = ?, missing = NULL WHERE id = ?",
                             (stamp, entry.item))
            for entry, error in gone.values():
                self._gone(conn, stamp, entry, error)
            applier.flush()
        self.summary.applied += applier.applied
        self.summary.completed += applier.completed
        return described

    def _changes_of(self, conn, entry, view, pending=None):
        """(the service as the books hold it now, the changes that bring it to ``view``);
        (None, []) when it is no longer linked to that item."""
        service = conn.execute("SELECT * FROM item WHERE id = ?", (entry.item,)).fetchone()
        if service is None or service["upstream_id"] != entry.upstream_id:
            return None, []
        if pending is None:
            pending = Applier(conn, self.module["id"], now()).pending([entry.item])
        row = dict(service)
        listed = (entry.row or {}).get("status")
        return row, compare.changes(self.store, self.module, entry.upstream_id, view, listed,
                                    row, pending, self.summary.warnings.append)

    def _log(self, conn, stamp, item_id, change):
        # No event id and no upstream date: a change found by comparing has neither.
        conn.execute("INSERT INTO eventlog (processingmodule, event_id, type, date, received, "
                     "item, upstream_item, outcome) VALUES (?, NULL, ?, NULL, ?, ?, ?, 'applied')",
                     (self.module["id"], change.type, stamp, item_id, change.item))

    def _gone(self, conn, stamp, entry, error):
        """A form that says the item does not exist: the service is *missing upstream*, never
        closed on that alone; reported the run it is first found so."""
        row = conn.execute("SELECT missing FROM item WHERE id = ?", (entry.item,)).fetchone()
        self.summary.missing += 1
        if row is None or row["missing"]:
            return
        self.summary.new_missing.append(entry.item)
        if self.dry_run:
            return
        conn.execute("UPDATE item SET missing = ?, compared = ? WHERE id = ?",
                     (stamp, stamp, entry.item))
        self.store.add_history(entry.item, f"missing upstream: item {entry.upstream_id} is not "
                                           f"in the lists, and reading it answered {error.type}",
                               source="poll", date=stamp)

    def _malformed_too_often(self):
        """Whether another malformed form is one too many this run: a few are those services'
        own (each warned of, and compared next run); more say the upstream is broken, and
        the module's run fails as when it cannot be reached."""
        self.malformed += 1
        return self.malformed > MALFORMED_PER_RUN


def itemtypes(store, module_id):
    """The item types a module's account may hold: those its tariffs sell, and those of the
    services in the books it holds."""
    return [r[0] for r in store.all(
        "SELECT itemtype FROM pricelist WHERE processingmodule = ? UNION "
        "SELECT itemtype FROM item WHERE upstream_module = ? ORDER BY 1",
        (module_id, module_id))]


def _differs(row, service):
    """Whether a list row shows the service (as Poll._books gives it) otherwise than the books
    do: its status, expiry, tariff (a list may show its upstream id or its name), or one of
    the parameters the books hold among the row's columns."""
    _, status, expiredate, tariff, params, _ = service
    if row["status"] is not None and int(row["status"]) != status:
        return True
    if row["expiredate"] is not None and row["expiredate"] != expiredate:
        return True
    shown = row["pricelist"]
    if shown and shown not in tariff:
        return True
    return any(name in params and params[name] != value
               for name, value in row["columns"].items())

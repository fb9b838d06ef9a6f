"""Applying the upstream's item event feed (``item.event.list``) to the books.

Each page of events is applied, logged and the module's feed position advanced in ONE
transaction; the upstream is acknowledged only after that commit. A run killed at any point
therefore loses nothing and applies nothing twice: the next run reads again after the committed
position, and the event log's unique (module, event id) key skips whatever was applied already
(``--from``).

The position is ``(cursor, skip)``: the last event id read, and how many records without a
usable id were read after it. Such a record cannot move the cursor (the upstream pages by id),
so ``skip`` is what keeps it from being read, logged and counted again by every later run.

An event that cannot be applied (unknown service, unknown type, malformed) is logged with its
reason and counted; it never stops the feed.
"""

import dataclasses
import datetime
import json

from resellctl import bmdoc
from resellctl.store import MAX_ID, now

_DUMP_DEPTH = 100  # levels of a record logged as it came; far within the recursion limit
# event type -> (operation kind it completes, new item status)
TYPES = {
    "open": ("open", 2),
    "openfail": ("open", None),
    "suspend": ("suspend", 3),
    "resume": ("resume", 2),
    "close": ("close", 4),
    "prolong": ("prolong", None),
    "setparam": ("setparam", None),
    "addon": (None, None),
    "changepricelist": ("changepricelist", None),
}


class Rejected(ValueError):
    """An event record that cannot be applied; its message is the reason."""


@dataclasses.dataclass(slots=True)
class Event:
    id: int
    type: str
    item: str
    remoteid: str | None = None
    date: str | None = None
    status: int | None = None
    expiredate: str | None = None
    pricelist: str | None = None
    params: dict | None = None
    addons: dict | None = None
    msg: str | None = None


def _text(node):
    """``bmdoc.text``, with the wire's usual ``{"$": "..."}`` read without further calls: a
    backlog of 100,000 events reads a million of them."""
    if type(node) is dict:
        value = node.get("$")
        if type(value) is str:
            return value
    elif node is None:
        return None
    return bmdoc.text(node)


def event_id(raw):
    """The id of a raw event, a whole number from 1 to MAX_ID; None when it has none."""
    try:
        value = _text(raw.get("id")) if isinstance(raw, dict) else None
    except ValueError:
        return None
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def advance(position, ident):
    """The feed position after a record with id ``ident`` (None: a record without one)."""
    cursor, skip = position
    if ident is None:
        return cursor, skip + 1
    return (ident, 0) if ident > cursor else position


def feed_end(position, idents):
    """The feed position after reading records with ids ``idents`` from ``position``."""
    for ident in idents:
        position = advance(position, ident)
    return position


def parse(raw, ident=None):
    """A raw event dict from the wire as an Event; Rejected with the reason if malformed.

    ``ident``: its ``event_id``, when the caller has it already.
    """
    if not isinstance(raw, dict):
        raise Rejected(f"an event must be an object, not {type(raw).__name__}")
    if ident is None:
        ident = event_id(raw)
    if ident is None:
        if raw.get("id") is None:
            raise Rejected("the event has no id")
        text = _loose_text(raw["id"])
        shown = repr(text) if text is not None else _shown(raw["id"])
        raise Rejected(f"the event's id {shown} is not a whole number from 1 to {MAX_ID}")
    get = raw.get
    try:
        kind, item, remoteid, date, msg, pricelist, status, expiry = (
            _text(get("type")), _text(get("item")), _text(get("remoteid")), _text(get("date")),
            _text(get("msg")), _text(get("pricelist")), _text(get("status")),
            _text(get("expiredate")))
    except ValueError:
        _reject_the_malformed_scalar(raw)
    if not kind:
        raise Rejected("the event has no type")
    if kind not in TYPES:
        raise Rejected(f"unknown event type {kind!r}")
    if not item:
        raise Rejected("the event names no item")
    event = Event(ident, kind, item, remoteid=remoteid, date=date, msg=msg, pricelist=pricelist)
    if status is not None:
        if status not in ("1", "2", "3", "4", "5"):
            raise Rejected(f"status {status!r} is not an item status code")
        event.status = int(status)
    if expiry is not None:
        try:
            datetime.date.fromisoformat(expiry)
        except ValueError:
            raise Rejected(f"expiredate {expiry!r} is not a date") from None
        event.expiredate = expiry
    if "param" in raw:
        event.params = _named(raw, "param")
    if "addon" in raw:
        event.addons = _named(raw, "addon")
    needs = _NEEDS.get(kind)
    if needs and getattr(event, needs) is None:
        raise Rejected(f"a {kind} event without {needs}")
    return event


# event type -> the field it cannot do without
_NEEDS = {"prolong": "expiredate", "setparam": "params", "addon": "addons",
          "changepricelist": "pricelist"}


def _reject_the_malformed_scalar(raw):
    """Rejected, naming the first scalar field of ``raw`` that is of another shape."""
    for name in ("type", "item", "remoteid", "date", "msg", "pricelist", "status",
                 "expiredate"):
        try:
            _text(raw.get(name))
        except ValueError as e:
            raise Rejected(f"field {name!r}: {e}") from None


def _named(raw, name):
    """The named values ``name`` of a raw event as a dict; Rejected if of another shape."""
    node = raw[name]
    if type(node) is list:
        # The wire's usual [{"$name": "ip", "$": "..."}], read without further calls.
        result = {}
        for elem in node:
            if type(elem) is not dict:
                break
            key, value = elem.get("$name"), elem.get("$")
            if type(key) is not str or type(value) is not str:
                break
            result[key] = value
        else:
            return result
    try:
        return bmdoc.named_values(node)
    except ValueError as e:
        raise Rejected(f"field {name!r}: {e}") from None


def _shown(value, limit=40):
    text = _dumped(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _dumped(value):
    """``value`` as JSON text; a note instead where it nests too deep for json.dumps to walk
    within Python's recursion limit (the answer's decoder, in another thread, may have)."""
    if not bmdoc.nests_within(value, _DUMP_DEPTH):
        return json.dumps(f"(nested more than {_DUMP_DEPTH} levels deep: not kept)")
    return json.dumps(value, default=str)


@dataclasses.dataclass
class PageResult:
    applied: int = 0
    skipped: int = 0
    unknown: int = 0
    rejected: int = 0
    completed: int = 0
    cursor: int = 0

    COUNTS = ("applied", "skipped", "unknown", "rejected", "completed")

    def add(self, other):
        for field in self.COUNTS:
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.cursor = max(self.cursor, other.cursor)


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


def apply_page(store, module, raws, start, idents=None, services=None):
    """Apply ``raws``, read from feed position ``start``, for ``module`` in one transaction.

    The module's stored position moves to the end of the page, never backwards; the event log
    records every record with its outcome, once: a record the stored position is past already
    (a re-read, ``--from``) is skipped. ``idents``: their ``event_id``s, if known already.
    ``services``: the module's Services, kept by the caller from page to page.
    Returns a PageResult.
    """
    result = PageResult()
    services = services or Services()
    with store.write():
        services.refresh(store.conn)
        stored = tuple(store.conn.execute(
            "SELECT event_cursor, event_skip FROM processingmodule WHERE id = ?",
            (module["id"],)).fetchone())
        if idents is None:
            idents = list(map(event_id, raws))
        applier = _Applier(store, module, result, services.rows)
        end = max(stored, applier.run(raws, idents, start, stored))
        if end != stored:
            store.conn.execute("UPDATE processingmodule SET event_cursor = ?, event_skip = ? "
                               "WHERE id = ?", (*end, module["id"]))
    result.cursor = end[0]
    return result


# What applying an event reads of a service: fewer columns make a page's lookups cheaper.
_ITEM_COLUMNS = ("item.id, item.status, item.expiredate, item.pricelist, item.upstream_id, "
                 "item.upstream_module")


# Values one statement may bind: SQLite before 3.32 allows no more than 999.
MAX_VARIABLES = 999


def insert_rows(conn, head, rows, tail=""):
    """``head (...), (...) tail`` for ``rows``: a statement of many rows costs SQLite far less
    than a statement per row (executemany), which a backlog would pay for every event."""
    if not rows:
        return
    group = "(" + ",".join("?" * len(rows[0])) + ")"
    per_statement = MAX_VARIABLES // len(rows[0])
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        conn.execute(f"{head} {','.join([group] * len(chunk))} {tail}",
                     [value for row in chunk for value in row])


class _Applier:
    """One page's work inside its transaction; rows are gathered and written in batches."""

    def __init__(self, store, module, result, services):
        self.store, self.conn, self.module, self.result = store, store.conn, module, result
        self.module_id = module["id"]
        self.services = services  # Services.rows: upstream item id -> row
        self.unlinked = []  # upstream item ids whose service this page unlinked
        self.stamp = now()
        self.log, self.history, self.params, self.addons = [], [], [], []
        self.tariffs = {}

    def run(self, raws, idents, position, stored):
        """Apply the page; the feed position after it."""
        ids = [i for i in idents if i is not None]
        seen = set()
        if ids:
            seen = {r[0] for r in self.conn.execute(
                "SELECT event_id FROM eventlog WHERE processingmodule = ? AND event_id "
                "BETWEEN ? AND ?", (self.module_id, min(ids), max(ids)))}
        parsed = []
        for raw, ident in zip(raws, idents):
            before, position = position, advance(position, ident)
            if ident is None:
                # Its only identity is its place in the feed: past the stored position, it is
                # new; before it, it was logged when the position moved past it.
                if before < stored:
                    self.result.skipped += 1
                    continue
            elif ident in seen:
                self.result.skipped += 1
                continue
            else:
                seen.add(ident)
            try:
                event = parse(raw, ident)
            except Rejected as why:
                where = "" if ident else f" (read after event {before[0]})"
                self._problem(raw, ident, None, "rejected", f"{why}{where}")
                continue
            parsed.append((raw, event))
        items = self._items([event for _, event in parsed])
        pending = self._pending({items[e.item]["id"] for _, e in parsed if items.get(e.item)})
        for raw, event in parsed:
            row = items.get(event.item)
            if row is None:
                row = items[event.item] = self._by_remoteid(event)
                if row is not None:
                    pending.update(self._pending({row["id"]}))
            if row is None:
                self._problem(raw, event.id, event, "unknown",
                              f"no service with upstream item {event.item}"
                              + (f" or remoteid {event.remoteid}" if event.remoteid else ""))
                continue
            self._apply(event, row, pending)
        for upstream_id in self.unlinked:
            # Found by that id no longer: the next page looks again, as the store answers.
            self.services.pop(upstream_id, None)
        insert_rows(self.conn, "INSERT INTO eventlog (processingmodule, event_id, type, date, "
                    "received, item, upstream_item, outcome, reason, raw) VALUES", self.log)
        insert_rows(self.conn, "INSERT INTO itemhistory (item, date, source, event, "
                    "runningoperation, message) VALUES", self.history)
        for table, rows in (("itemparam", self.params), ("itemaddon", self.addons)):
            insert_rows(self.conn, f"INSERT INTO {table} (item, name, value) VALUES", rows,
                        "ON CONFLICT (item, name) DO UPDATE SET value = excluded.value")
        return position

    def _items(self, events):
        """Local services of this page's events, by upstream item id: those not met on an
        earlier page are read, in a few queries."""
        found = self.services
        wanted = sorted({e.item for e in events}.difference(found))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT {_ITEM_COLUMNS} FROM item WHERE upstream_module = ? "
                    f"AND upstream_id IN ({marks})", (self.module_id, *chunk)):
                found[row["upstream_id"]] = dict(row)
        return found

    def _pending(self, item_ids):
        """Unfinished operations of this module for the page's services: {(item, kind): op}."""
        pending = {}
        ids = sorted(item_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    "SELECT id, item, operation, status, task FROM runningoperation WHERE "
                    f"status IN ('new', 'waiting', 'failed') AND item IN ({marks}) "
                    "AND processingmodule = ? ORDER BY id DESC", (*chunk, self.module_id)):
                pending[(row["item"], row["operation"])] = row
        return pending

    def _by_remoteid(self, event):
        """An event that arrived before the order's answer was recorded: match our remoteid."""
        if not event.remoteid:
            return None
        row = self.conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM item JOIN pricelist ON pricelist.id = item.pricelist "
            "WHERE item.remoteid = ? AND pricelist.processingmodule = ? AND "
            "(item.upstream_id IS NULL OR item.upstream_id = ?)",
            (event.remoteid, self.module_id, event.item)).fetchone()
        if row is None:
            return None
        row = dict(row)
        if row["upstream_id"] is None:
            self.conn.execute("UPDATE item SET upstream_id = ?, upstream_module = ? WHERE id = ?",
                              (event.item, self.module_id, row["id"]))
            row.update(upstream_id=event.item, upstream_module=self.module_id)
        return row

    def _problem(self, raw, ident, event, outcome, reason):
        """Log a record that could not be applied, as it came, with the reason."""
        if event is not None:
            kind, item, date = event.type, event.item, event.date
        elif isinstance(raw, dict):
            kind, item, date = (_loose_text(raw.get(k)) for k in ("type", "item", "date"))
        else:
            kind = item = date = None
        setattr(self.result, outcome, getattr(self.result, outcome) + 1)
        self.log.append((self.module_id, ident, kind, date, self.stamp, None, item, outcome,
                         reason, _dumped(raw)[:4000]))

    def _apply(self, event, row, pending):
        item_id, conn = row["id"], self.conn
        kind, status = TYPES[event.type]
        changes = []
        if event.type == "openfail":
            # Refunded and gone upstream: unlink, so that `ops start` orders it again.
            conn.execute("UPDATE item SET upstream_id = NULL, upstream_module = NULL, status = 1,"
                         " mdate = ? WHERE id = ?", (self.stamp, item_id))
            row.update(upstream_id=None, status=1)
            self.unlinked.append(event.item)
            changes.append("opening failed upstream" + (f": {event.msg}" if event.msg else ""))
        else:
            status = event.status or status
            if status is not None and status != row["status"]:
                conn.execute("UPDATE item SET status = ?, mdate = ? WHERE id = ?",
                             (status, self.stamp, item_id))
                changes.append(f"status {row['status']} -> {status}")
                row["status"] = status
            if event.expiredate and event.expiredate != row["expiredate"]:
                conn.execute("UPDATE item SET expiredate = ?, mdate = ? WHERE id = ?",
                             (event.expiredate, self.stamp, item_id))
                changes.append(f"expires {event.expiredate}")
                row["expiredate"] = event.expiredate
            if event.pricelist:
                local, name = self._tariff(event.pricelist)
                if local is None:
                    changes.append(f"tariff {event.pricelist} is not imported here "
                                   "(resellctl tariffs import)")
                elif local != row["pricelist"]:
                    conn.execute("UPDATE item SET pricelist = ?, mdate = ? WHERE id = ?",
                                 (local, self.stamp, item_id))
                    changes.append(f"tariff {name}")
                    row["pricelist"] = local
            if event.params:
                self.params.extend((item_id, k, v) for k, v in event.params.items())
                changes.append(", ".join(f"{k}={v}" for k, v in event.params.items()))
            if event.addons:
                self.addons.extend((item_id, k, v) for k, v in event.addons.items())
                changes.append("resources " + ", ".join(f"{k}={v}"
                                                        for k, v in event.addons.items()))
            if event.msg:
                changes.append(f"reason: {event.msg}")
        op = pending.pop((item_id, kind), None) if kind else None
        if op is not None and (op["status"] == "waiting" or kind == "open"):
            self._complete(op, event)
            outcome = "failed" if event.type == "openfail" else "done"
            changes.append(f"operation {op['id']} {outcome}")
        elif op is not None:
            pending[(item_id, kind)] = op
        self.result.applied += 1
        message = f"{event.type} (event {event.id})" + (
            ": " + "; ".join(changes) if changes else "")
        self.history.append((item_id, self.stamp, "event", event.id, op["id"] if op else None,
                             message))
        self.log.append((self.module_id, event.id, event.type, event.date, self.stamp,
                         item_id, event.item, "applied", None, None))

    def _complete(self, op, event):
        conn = self.conn
        if event.type == "openfail":
            message = event.msg or "opening failed upstream"
            conn.execute("INSERT INTO runningoperation_error (runningoperation, date, type, "
                         "message) VALUES (?, ?, 'openfail', ?)", (op["id"], self.stamp, message))
            conn.execute("UPDATE runningoperation SET status = 'failed', error_type = 'openfail',"
                         " error_message = ?, mdate = ? WHERE id = ?",
                         (message, self.stamp, op["id"]))
        else:
            conn.execute("UPDATE runningoperation SET status = 'done', mdate = ? WHERE id = ?",
                         (self.stamp, op["id"]))
            self.result.completed += 1
        if op["task"]:
            conn.execute("UPDATE task SET status = 'closed', closedate = ?, closedby = ? "
                         "WHERE id = ? AND status = 'open'",
                         (self.stamp, f"event {event.id}", op["task"]))

    def _tariff(self, remote_id):
        """The local tariff (id, name) of an upstream tariff id; (None, None) if not imported."""
        if remote_id not in self.tariffs:
            row = self.conn.execute("SELECT id, name FROM pricelist WHERE processingmodule = ? "
                                    "AND remote_id = ?", (self.module_id, remote_id)).fetchone()
            self.tariffs[remote_id] = tuple(row) if row else (None, None)
        return self.tariffs[remote_id]


def _loose_text(node, limit=200):
    """A field of a rejected record, for the log: None when it is not a scalar."""
    try:
        text = bmdoc.text(node)
    except ValueError:
        return None
    return text if text is None or len(text) <= limit else text[:limit] + "..."

"""Reading the upstream's item event feed (``item.event.list``) into the books.

Each page of events is applied, logged and the module's feed position advanced in ONE
transaction; the upstream is acknowledged only after that commit. A run killed at any point
therefore loses nothing and applies nothing twice: the next run reads again after the committed
position, and the event log's unique (module, event id) key skips whatever was applied already
(``--from``).

The position is ``(cursor, skip)``: the last event id read, and how many records without a
usable id were read after it. Such a record cannot move the cursor (the upstream pages by id),
so ``skip`` is what keeps it from being read, logged and counted again by every later run.

An event that cannot be applied (unknown service, unknown type, malformed) is logged with its
reason and counted; it never stops the feed. Each event is a Change (resellctl.changes), applied
by the one applier every source of changes shares (resellctl.applier).
"""

import dataclasses
import datetime
import json

from resellctl import bmdoc
from resellctl.applier import Applier, Services, insert_rows
from resellctl.changes import TYPES, Change
from resellctl.printable import one_line
from resellctl.store import MAX_ID, now

_DUMP_DEPTH = 100  # levels of a record logged as it came; far within the recursion limit


class Rejected(ValueError):
    """An event record that cannot be applied; its message is the reason."""


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
    """A raw event dict from the wire as a Change; Rejected with the reason if malformed.

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
    event = Change(kind, item, remoteid=remoteid, date=date, msg=msg, pricelist=pricelist,
                   id=ident)
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
    needs = TYPES[kind][1]
    if needs and getattr(event, needs) is None:
        raise Rejected(f"a {kind} event without {needs}")
    return event


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
        page = _Page(store.conn, module["id"], result, services.rows)
        end = max(stored, page.run(raws, idents, start, stored))
        if end != stored:
            store.conn.execute("UPDATE processingmodule SET event_cursor = ?, event_skip = ? "
                               "WHERE id = ?", (*end, module["id"]))
    result.cursor = end[0]
    return result


class _Page:
    """One page's work inside its transaction: records sorted into new, already applied and
    problems; the new ones applied; every record logged once."""

    def __init__(self, conn, module_id, result, services):
        self.conn, self.module_id, self.result = conn, module_id, result
        self.stamp = now()
        self.applier = Applier(conn, module_id, self.stamp, services)
        self.log = []

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
        applier = self.applier
        items = applier.items([event for _, event in parsed])
        pending = applier.pending({items[e.item]["id"] for _, e in parsed if items.get(e.item)})
        # Locals: this loop runs for every event of a backlog.
        apply, log, module_id, stamp = applier.apply, self.log.append, self.module_id, self.stamp
        for raw, event in parsed:
            row = items.get(event.item)
            if row is None:
                row = applier.by_remoteid(event)
                if row is not None:
                    pending.update(applier.pending({row["id"]}))
            if row is None:
                self._problem(raw, event.id, event, "unknown",
                              f"no service with upstream item {event.item}"
                              + (f" or remoteid {event.remoteid}" if event.remoteid else ""))
                continue
            apply(event, row, pending, f"{event.type} (event {event.id})")
            log((module_id, event.id, event.type, event.date, stamp, row["id"], event.item,
                 "applied", None, None))
        applier.flush()
        self.result.applied += applier.applied
        self.result.completed += applier.completed
        applier.applied = applier.completed = 0
        insert_rows(self.conn, "INSERT INTO eventlog (processingmodule, event_id, type, date, "
                    "received, item, upstream_item, outcome, reason, raw) VALUES", self.log)
        return position

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
                         one_line(reason), _dumped(raw)[:4000]))


def _loose_text(node, limit=200):
    """A field of a rejected record, for the log: None when it is not a scalar."""
    try:
        text = bmdoc.text(node)
    except ValueError:
        return None
    return text if text is None or len(text) <= limit else text[:limit] + "..."

"""Read-only views of the books, shaped as the command line shows them.

Every list is a keyset page over an indexed column (``--after ID``, ``--limit N``, or the newest
``--last N``), so its cost grows with the page, not with the store, and rows are yielded as
they are read. Modules and tariffs appear by name; item status is the numeric code; times are
in UTC as the store keeps them, but for an event's ``date``, the upstream's own; JSON field names
are the columns' own, as BILLmanager names them.
"""

import collections
import heapq
import itertools
import json

from resellctl.schema import PROBLEMS

DEFAULT_LIMIT = 1000


class Page:
    """One keyset page of a listing: its rows, read as they are iterated. Once they are,
    ``more`` says whether the store holds more after them, ``last`` is the last id shown (the
    next page starts after it)."""

    def __init__(self, rows, limit):
        self._rows, self._limit = rows, limit
        self.more, self.last = False, None

    def __iter__(self):
        for count, row in enumerate(self._rows):
            if self._limit and count == self._limit:
                self.more = True  # the one row read beyond the page
                return
            self.last = row["id"]
            yield row


def _page(store, sql, where, args, after, limit, last=None):
    """The rows of a page in id order: after id ``after``, at most ``limit`` of them (0: all)
    and one more that tells there are more; or, given ``last``, the newest ``last``."""
    if after:
        where.append("id > ?")
        args.append(int(after))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    if last:
        # Read backwards on the same index; only the page is turned round.
        return reversed(store.conn.execute(f"{sql}{clause} ORDER BY id DESC LIMIT ?",
                                           [*args, int(last)]).fetchall())
    if limit:
        args.append(int(limit) + 1)
    return store.conn.execute(f"{sql}{clause} ORDER BY id" + (" LIMIT ?" if limit else ""), args)


def _filtered(store, table, filters, shape, after, limit, last, where=()):
    """A Page of the rows of ``table`` whose columns equal the given ``filters`` (None: no
    filter) and that meet the conditions ``where``, each as ``shape(row)`` gives it."""
    def rows():
        given = {column: value for column, value in filters.items() if value is not None}
        for row in _page(store, f"SELECT * FROM {table}",
                         [*(f"{c} = ?" for c in given), *where],
                         list(given.values()), after, limit, last):
            yield shape(row)
    return Page(rows(), None if last else limit)


def _names(store, table):
    return {r[0]: r[1] for r in store.conn.execute(f"SELECT id, name FROM {table}")}


def modules(store):
    for row in store.all("SELECT * FROM processingmodule ORDER BY id"):
        yield {
            "id": row["id"], "name": row["name"], "type": row["type"], "api": row["api"],
            "url": row["url"],
            "username": row["username"], "datacenter": row["datacenter"],
            "min_balance": row["min_balance"], "balance": row["balance"],
            "currency": row["currency"], "balance_date": row["balance_date"],
            "auto_rerun": bool(row["auto_rerun"]), "event_cursor": row["event_cursor"],
        }


def tariffs(store, module=None):
    names = _names(store, "processingmodule")
    where, args = [], []
    if module is not None:
        where.append("processingmodule = ?")
        args.append(store.module(module)["id"])
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    for row in store.all(f"SELECT * FROM pricelist{clause} ORDER BY id", args):
        prices = {str(months): cost for months, cost in store.tariff_periods(row["id"]).items()}
        addons = {name: f"{a['value']} {a['measure'] or ''}".strip()
                  for name, a in store.tariff_addons(row["id"]).items()}
        yield {"id": row["id"], "name": row["name"], "itemtype": row["itemtype"],
               "processingmodule": names.get(row["processingmodule"]),
               "remote_id": row["remote_id"], "currency": row["currency"], "prices": prices,
               "addons": addons}


def operations(store, status=None, item=None, after=None, limit=DEFAULT_LIMIT, last=None):
    """A Page of running operations."""
    modules_ = _names(store, "processingmodule")
    filters = {"status": status or None, "item": None if item is None else int(item)}
    return _filtered(store, "runningoperation", filters,
                     lambda row: operation_row(row, modules_), after, limit, last)


def operation_row(row, module_names):
    return {
        "id": row["id"], "desc": row["desc"], "operation": row["operation"],
        "item": row["item"], "itemtype": row["itemtype"], "client": row["client"],
        "cdate": row["cdate"], "trycount": row["trycount"],
        "processingmodule": module_names.get(row["processingmodule"]), "task": row["task"],
        "status": row["status"], "reason": row["error_message"],
        "error_type": row["error_type"],
    }


def operation(store, op_id):
    row = store.operation(op_id)
    obj = operation_row(row, _names(store, "processingmodule"))
    obj["params"] = json.loads(row["params"] or "{}")
    obj["mdate"] = row["mdate"]
    obj["errors"] = [
        {"date": r["date"], "type": r["type"], "message": r["message"],
         **({"amount": r["amount"], "deficit": r["deficit"]} if r["deficit"] else {})}
        for r in store.all("SELECT * FROM runningoperation_error WHERE runningoperation = ? "
                           "ORDER BY id", (row["id"],))]
    return obj


def tasks(store, status=None, item=None, after=None, limit=DEFAULT_LIMIT, last=None):
    """A Page of tasks."""
    tariffs_ = _names(store, "pricelist")
    filters = {"status": status or None, "item": None if item is None else int(item)}
    return _filtered(store, "task", filters, lambda row: task_row(row, tariffs_), after, limit,
                     last)


def task_row(row, tariff_names):
    return {
        "id": row["id"], "type": row["type"], "item": row["item"],
        "itemstatus": row["itemstatus"], "itemtype": row["itemtype"],
        "pricelist": tariff_names.get(row["pricelist"]), "client": row["client"],
        "runningoperation": row["runningoperation"], "opendate": row["opendate"],
        "closedate": row["closedate"], "status": row["status"], "note": row["note"],
        "closedby": row["closedby"],
    }


def services(store, status=None, client=None, after=None, limit=DEFAULT_LIMIT, last=None,
             missing=False):
    """A Page of services (``missing``: only those missing upstream)."""
    modules_ = _names(store, "processingmodule")
    tariffs_ = _names(store, "pricelist")
    filters = {"status": None if status is None else int(status), "client": client or None}
    return _filtered(store, "item", filters, lambda row: service_row(row, modules_, tariffs_),
                     after, limit, last, ["missing IS NOT NULL"] if missing else ())


def service_row(row, module_names, tariff_names):
    return {
        "id": row["id"], "client": row["client"],
        "pricelist": tariff_names.get(row["pricelist"]), "itemtype": row["itemtype"],
        "status": row["status"], "processingmodule": module_names.get(row["processingmodule"]),
        "period": row["period"], "expiredate": row["expiredate"],
        "upstream_id": row["upstream_id"], "missing": row["missing"],
    }


def service(store, item_id):
    row = store.item(item_id)
    modules_ = _names(store, "processingmodule")
    tariffs_ = _names(store, "pricelist")
    obj = service_row(row, modules_, tariffs_)
    obj["upstream_module"] = modules_.get(row["upstream_module"])
    obj["remoteid"] = row["remoteid"]
    obj["cdate"] = row["cdate"]
    obj["params"] = {r["name"]: r["value"] for r in store.all(
        "SELECT name, value FROM itemparam WHERE item = ? ORDER BY name", (row["id"],))}
    obj["addons"] = {r["name"]: r["value"] for r in store.all(
        "SELECT name, value FROM itemaddon WHERE item = ? ORDER BY name", (row["id"],))}
    obj["history"] = [dict(r) for r in store.all(
        "SELECT date, source, who, event, runningoperation, message FROM itemhistory "
        "WHERE item = ? ORDER BY id", (row["id"],))]
    obj["operations"] = [
        {"id": r["id"], "operation": r["operation"], "status": r["status"],
         "cdate": r["cdate"], "task": r["task"]}
        for r in store.all("SELECT * FROM runningoperation WHERE item = ? ORDER BY id",
                           (row["id"],))]
    obj["tasks"] = [
        {"id": r["id"], "type": r["type"], "status": r["status"], "opendate": r["opendate"],
         "closedate": r["closedate"]}
        for r in store.all("SELECT * FROM task WHERE item = ? ORDER BY id", (row["id"],))]
    return obj


def events(store, problem=False, module=None, after=None, limit=DEFAULT_LIMIT, last=None):
    """A Page of the event log, each record (``raw``) as it came, parsed."""
    def rows():
        modules_ = _names(store, "processingmodule")
        where, args = [], []
        if module is not None:
            # `+`: read the log in id order, passing other modules' events by; on the module's
            # (module, event id) index SQLite would first read and sort every event it had.
            where.append("+processingmodule = ?")
            args.append(store.module(module)["id"])
        if problem:
            # One page per outcome, each in id order on its own partial index, merged: with
            # `outcome IN (...)` SQLite would first read and sort every problem ever logged.
            # The outcome is written into the query, as the index's condition is: SQLite uses
            # a partial index only for a condition it can see.
            found = heapq.merge(*(
                _page(store, "SELECT * FROM eventlog", [*where, f"outcome = '{outcome}'"],
                      list(args), after, limit, last) for outcome in PROBLEMS),
                key=lambda row: row["id"])
            found = (collections.deque(found, maxlen=last) if last
                     else itertools.islice(found, limit + 1 if limit else None))
        else:
            found = _page(store, "SELECT * FROM eventlog", where, args, after, limit, last)
        for row in found:
            yield {"id": row["id"], "processingmodule": modules_.get(row["processingmodule"]),
                   "event_id": row["event_id"], "type": row["type"], "date": row["date"],
                   "received": row["received"], "item": row["item"],
                   "upstream_item": row["upstream_item"], "outcome": row["outcome"],
                   "reason": row["reason"], "raw": _record(row["raw"])}
    return Page(rows(), None if last else limit)


def _record(raw):
    """An event record as the log keeps it (JSON text), parsed; a record the log had to cut
    short stays the text it kept."""
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw

"""The operation engine: send a running operation by its module and record what came of it.

An operation is written (status ``new``) in the same transaction as the service change it asks
for. Processing it sends one request upstream (``trycount`` +1, committed before sending);
accepted, it becomes ``waiting`` with a linked task; refused, it becomes ``failed`` with the
error appended to its history and no task. Under a manual module nothing is sent: the task is
for staff. No transaction is held while the upstream is asked.

Re-sending is never blind. An order carries a ``remoteid`` unique to this store and service,
so the upstream answers ``exists`` instead of creating a second service. Any other operation
whose earlier attempt may have reached the upstream (a timeout after sending, a dropped answer)
first reads the upstream's view of the service (``<itemtype>.edit``) and is not sent again when
the change is already there.
"""

import dataclasses
import datetime
import fcntl
import json
import os

from resellctl import errors
from resellctl.errors import InputError, UpstreamError
from resellctl.store import now
from resellctl.storefiles import beside, open_private

# kind -> (task type, words for messages)
KINDS = {
    "open": ("postopen", "open"),
    "prolong": ("postprolong", "prolong"),
    "suspend": ("postsuspend", "suspend"),
    "resume": ("postresume", "resume"),
    "close": ("postclose", "close"),
    "changepricelist": ("postchangepricelist", "change the tariff of"),
    "setparam": ("postsetparam", "set parameters of"),
}

# Operations still in progress: a service may have only one of these at a time.
PENDING = ("new", "waiting", "failed")
# Every status: ``cancelled`` is one given up by `ops cancel`, or an order closed before it
# reached the upstream.
STATUSES = ("new", "waiting", "failed", "done", "cancelled")


@dataclasses.dataclass
class Outcome:
    """What processing one operation came to."""

    runningoperation: int
    item: int
    status: str
    error: UpstreamError | None = None
    note: str = ""
    unsent: bool = False  # not sent at all: the upstream had stopped answering


def describe(kind, item_id, detail=""):
    words = KINDS[kind][1]
    return f"{words[0].upper()}{words[1:]} service {item_id}" + (f" ({detail})" if detail else "")


def create(store, item, kind, params, desc, module_id=None):
    """Write a new operation for ``item``; call inside ``store.write()``. Returns its id."""
    # Events logged after this mark may be this operation's own (see Engine._seen_done).
    params = {**params, "eventlog_mark": store.one(
        "SELECT coalesce(max(id), 0) FROM eventlog")[0]}
    cur = store.conn.execute(
        "INSERT INTO runningoperation (desc, item, itemtype, client, cdate, mdate, trycount, "
        "processingmodule, status, operation, params) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'new', ?, ?)",
        (desc, item["id"], item["itemtype"], item["client"], now(), now(),
         module_id or item["processingmodule"], kind, json.dumps(params, sort_keys=True)))
    return cur.lastrowid


class Engine:
    """Processes operations of one store, with one upstream client per module."""

    def __init__(self, store):
        self.store = store
        self._clients = {}

    def client(self, module):
        """The API client of a billmanager module (requests is imported only here)."""
        if module["id"] not in self._clients:
            from resellctl.upstream import Client

            self._clients[module["id"]] = Client(module["url"], module["username"],
                                                 self.store.password(module))
        return self._clients[module["id"]]

    # -- processing ----------------------------------------------------------------------------

    def process(self, op_id):
        """Send one operation by its module and record the outcome; never raises UpstreamError.

        One process at a time sends a given operation (checkevent re-running it for funds while
        an admin starts it must not prolong twice): the others get the status ``busy``.
        """
        op = self.store.operation(op_id)
        claim = claim_operation(self.store.path, op["id"])
        if claim is None:
            return Outcome(op["id"], op["item"], "busy",
                           note="another resellctl process is sending it")
        try:
            return self._process(op["id"])
        finally:
            os.close(claim)

    def _process(self, op_id):
        store = self.store
        op = store.operation(op_id)  # read again under the claim: it may be done by now
        if op["status"] not in ("new", "failed"):
            return Outcome(op["id"], op["item"], op["status"])
        module = store.module(op["processingmodule"])
        if module["type"] == "manual":
            return self._accepted(op)
        if op["operation"] == "close" and not store.item(op["item"])["upstream_id"]:
            return self._closed_here(op)
        maybe_sent = may_have_reached(self.store, op)
        with store.write():
            store.conn.execute(
                "UPDATE runningoperation SET trycount = trycount + 1, mdate = ? WHERE id = ?",
                (now(), op["id"]))
        try:
            note, upstream_id = self._send(op, module, maybe_sent)
        except UpstreamError as error:
            if error.kind == errors.EXISTS and op["operation"] == "open":
                upstream_id = error.params.get("id")
                if not upstream_id:
                    return self._failed(op, module, error)
                return self._accepted(op, upstream_id, module,
                                      note=f"adopted the existing upstream item {upstream_id} "
                                           "(the upstream already had this order)")
            return self._failed(op, module, error)
        return self._accepted(op, upstream_id, module, note=note)

    def _send(self, op, module, maybe_sent):
        """Send ``op`` upstream. Returns (note, upstream item id for an open)."""
        from resellctl.upstream import retrying

        client = self.client(module)
        item = self.store.item(op["item"])
        params = json.loads(op["params"] or "{}")
        kind = op["operation"]
        if kind == "open":
            # The upstream de-duplicates by remoteid, so re-sending an order is always safe.
            return "", self.send_request(client, op, item, module, params)
        if not item["upstream_id"]:
            raise UpstreamError(errors.PERMANENT,
                                f"service {item['id']} has no upstream item to {kind}",
                                type="no_upstream_item",
                                hint="Its order never reached the upstream (see "
                                     f"`resellctl services show {item['id']}`).")
        state = {"maybe_sent": maybe_sent}

        def attempt():
            if kind == "prolong" and not state["maybe_sent"]:
                # A prolongation is relative: note where the upstream's expiry stands before a
                # try that nothing went before (or only refusals: the upstream may have moved
                # the expiry on its own since), so a later try can tell whether one went through.
                seen = client.edit_read(item["itemtype"], item["upstream_id"])
                params["expiredate_before"] = seen.get("expiredate") or ""
                self._save_params(op, params)
            elif state["maybe_sent"]:
                seen = client.edit_read(item["itemtype"], item["upstream_id"])
                if already_applied(kind, params, seen):
                    return ("an earlier attempt reached the upstream (it shows "
                            f"{summarise(kind, seen)}); not sent again")
            try:
                self.send_request(client, op, item, module, params)
            except UpstreamError as error:
                state["maybe_sent"] = state["maybe_sent"] or error.maybe_sent
                raise
            return ""

        # Transient failures are retried (retrying's default), each try checking first.
        return retrying(deadline=client.deadline)(attempt), None

    def _save_params(self, op, params):
        with self.store.write():
            self.store.conn.execute("UPDATE runningoperation SET params = ? WHERE id = ?",
                                    (json.dumps(params, sort_keys=True), op["id"]))

    def send_request(self, client, op, item, module, params):
        """The one request that carries out ``op`` (PROTOCOL.md's functions)."""
        kind = op["operation"]
        if kind == "open":
            tariff = self.store.tariff(item["pricelist"])
            return client.order(
                item["itemtype"], tariff["remote_id"], item["period"], remoteid=item["remoteid"],
                datacenter=module["datacenter"] or None, addons=params.get("addons"),
                params=params.get("params"))
        return send_change(client, kind, item, params)

    def dry_run(self, op_id):
        """The request ``op_id`` would send (password redacted) and its errors; sends nothing."""
        from resellctl import views

        op = self.store.operation(op_id)
        shown = views.operation(self.store, op_id)
        module = self.store.module(op["processingmodule"])
        if module["type"] == "manual":
            shown["request"] = "nothing: a manual module makes a task for staff"
            return shown
        client = self.client(module)
        with client.recording() as sent:
            self.send_request(client, op, self.store.item(op["item"]), module,
                              json.loads(op["params"] or "{}"))
        shown["request"] = {"url": module["url"], "method": "POST", "form": sent[0]}
        return shown

    def _accepted(self, op, upstream_id=None, module=None, note=""):
        store = self.store
        kind = op["operation"]
        with store.write():
            current = store.operation(op["id"])
            if current["status"] == "done":
                # The matching event was applied while the request was under way.
                return Outcome(op["id"], op["item"], "done", note=note)
            item = store.item(op["item"])
            if kind == "open" and upstream_id is not None:
                store.conn.execute(
                    "UPDATE item SET upstream_id = ?, upstream_module = ?, mdate = ?, "
                    "status = CASE WHEN status = 1 THEN 5 ELSE status END WHERE id = ?",
                    (str(upstream_id), module["id"], now(), item["id"]))
                item = store.item(op["item"])
            event = self._seen_done(current, item) if module is not None else None
            stamp = now()
            task_id = store.conn.execute(
                "INSERT INTO task (type, item, itemstatus, itemtype, pricelist, client, "
                "runningoperation, opendate, status, closedate, closedby) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (KINDS[kind][0], item["id"], item["status"], item["itemtype"], item["pricelist"],
                 item["client"], op["id"], stamp, "open" if event is None else "closed",
                 None if event is None else stamp,
                 None if event is None else f"event {event}")).lastrowid
            status = "waiting" if event is None else "done"
            store.conn.execute(
                "UPDATE runningoperation SET status = ?, task = ?, mdate = ?, "
                "error_type = NULL, error_message = NULL, amount = NULL WHERE id = ?",
                (status, task_id, stamp, op["id"]))
            where = f"upstream item {upstream_id}" if upstream_id else "the upstream"
            if module is None:
                message = f"operation {op['id']} ({kind}) waits for staff: task {task_id}"
            elif event is None:
                message = f"operation {op['id']} ({kind}) accepted by {where}; task {task_id}"
            else:
                message = (f"operation {op['id']} ({kind}) done: its upstream event {event} "
                           f"was applied already; task {task_id} closed")
            store.add_history(item["id"], message + (f"; {note}" if note else ""),
                              runningoperation=op["id"])
        return Outcome(op["id"], op["item"], status, note=note)

    def _closed_here(self, op):
        """Close a service the upstream has no item for (its order failed upstream, or was
        given up): in the books only, as there is nothing to send."""
        with self.store.write():
            stamp = now()
            self.store.conn.execute("UPDATE item SET status = 4, mdate = ? WHERE id = ?",
                                    (stamp, op["item"]))
            self.store.conn.execute("UPDATE runningoperation SET status = 'done', mdate = ? "
                                    "WHERE id = ?", (stamp, op["id"]))
            self.store.add_history(op["item"], f"operation {op['id']} (close) done in the books: "
                                               "the upstream has no item for it",
                                   runningoperation=op["id"])
        return Outcome(op["id"], op["item"], "done")

    def _seen_done(self, op, item):
        """The id of an applied event that shows ``op`` done, or None.

        Such an event arrives before the operation is accepted when checkevent ran while the
        request was under way, or between a lost answer and a restart; waiting for it would
        wait forever. It must be of the operation's kind, logged after the operation was made,
        and the books must show the change.
        """
        params = json.loads(op["params"] or "{}")
        row = self.store.one(
            "SELECT event_id FROM eventlog WHERE id > ? AND item = ? AND type = ? AND "
            "outcome = 'applied' ORDER BY id DESC LIMIT 1",
            (params.get("eventlog_mark", 0), item["id"], op["operation"]))
        if row is None:
            return None
        if op["operation"] == "open":
            shown = item["status"] == 2
        else:
            shown = already_applied(op["operation"], params, local_view(self.store, item))
        return row["event_id"] if shown else None

    def _failed(self, op, module, error):
        store = self.store
        amount = error.params.get("amount") if error.kind == errors.BALANCE else None
        deficit = error.params.get("deficit") if error.kind == errors.BALANCE else None
        with store.write():
            changed = store.conn.execute(
                "UPDATE runningoperation SET status = 'failed', mdate = ?, error_type = ?, "
                "error_message = ?, amount = ? WHERE id = ? AND status != 'done'",
                (now(), error.kind, error.message, amount, op["id"])).rowcount
            if not changed:
                # Its event was applied while the request was under way: it is done.
                return Outcome(op["id"], op["item"], "done")
            store.conn.execute(
                "INSERT INTO runningoperation_error (runningoperation, date, type, message, "
                "amount, deficit) VALUES (?, ?, ?, ?, ?, ?)",
                (op["id"], now(), error.kind, error.message, amount, deficit))
        error.hint = next_step(op, module, error)
        return Outcome(op["id"], op["item"], "failed", error=error)

    def start(self, op_ids):
        """Re-run operations in status failed or new; refuse any other with InputError."""
        return list(self.process_many(self.startable(op_ids)))

    def process_many(self, op_ids):
        """Process operations in turn, yielding each Outcome. Once the upstream does not answer,
        the rest are not sent (Outcome ``unsent``, in the status they had): each would only
        wait out its own retries."""
        unreachable = None
        for op_id in op_ids:
            if unreachable is not None:
                op = self.store.operation(op_id)
                yield Outcome(op_id, op["item"], op["status"], unreachable, unsent=True)
                continue
            outcome = self.process(op_id)
            if outcome.error is not None and outcome.error.kind == errors.TRANSIENT:
                unreachable = outcome.error
            yield outcome

    def startable(self, op_ids):
        """``op_ids`` when every one is failed or new; else InputError naming the others."""
        ops = [self.store.operation(op_id) for op_id in op_ids]
        refused = [op for op in ops if op["status"] not in ("failed", "new")]
        if refused:
            details = "; ".join(f"operation {op['id']} is {op['status']}" for op in refused)
            raise InputError(f"only failed or new operations can be started: {details}",
                             "A waiting operation completes with its upstream event "
                             "(`resellctl checkevent`); a done one needs nothing.")
        return [op["id"] for op in ops]


def may_have_reached(store, op):
    """Could an earlier attempt of ``op`` have reached the upstream and done its work there?
    Yes, unless each one ended in a clear refusal or an `openfail` (a crash mid-send or a lost
    answer leaves no such row)."""
    refused = store.one(
        "SELECT count(*) FROM runningoperation_error WHERE runningoperation = ? AND type IN "
        "(?, ?, ?, 'openfail')", (op["id"], errors.BALANCE, errors.AUTH, errors.PERMANENT))[0]
    return op["trycount"] > refused


def claim_operation(store_path, op_id):
    """Lock byte ``op_id`` of ``<store>.sending``; the open descriptor (closing it lets go), or
    None when another process holds it. The kernel lets go when the holder dies."""
    fd = open_private(beside(store_path, ".sending"))
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, op_id)
    except OSError:
        os.close(fd)
        return None
    return fd


def send_change(client, kind, item, params):
    """The request of one lifecycle operation (PROTOCOL.md's functions)."""
    elid, itemtype = item["upstream_id"], item["itemtype"]
    if kind == "prolong":
        client.prolong(elid, params["period"], retry="unsent")
    elif kind == "suspend":
        client.suspend(itemtype, elid, retry="unsent")
    elif kind == "resume":
        client.resume(itemtype, elid, retry="unsent")
    elif kind == "close":
        client.delete(itemtype, elid, retry="unsent")
    elif kind == "changepricelist":
        client.changepricelist(elid, params["pricelist_remote_id"], retry="unsent")
    elif kind == "setparam":
        client.edit_write(itemtype, elid, params["params"], retry="unsent")
    else:
        raise ValueError(f"unknown operation kind {kind!r}")


def already_applied(kind, params, seen):
    """Does the upstream's view of the service (``edit_read``) already show this change?"""
    if kind == "prolong":
        return (seen.get("expiredate") or "") > (params.get("expiredate_before") or "")
    if kind in ("suspend", "resume", "close"):
        return seen.get("status") == {"suspend": "3", "resume": "2", "close": "4"}[kind]
    if kind == "changepricelist":
        return seen.get("pricelist") == str(params["pricelist_remote_id"])
    if kind == "setparam":
        have = seen.get("params") or {}
        return all(have.get(k) == str(v) for k, v in params["params"].items())
    return False


def local_view(store, item):
    """The books' view of a service, in the shape of ``Client.edit_read``."""
    tariff = store.one("SELECT remote_id FROM pricelist WHERE id = ?", (item["pricelist"],))
    return {"status": str(item["status"]), "expiredate": item["expiredate"],
            "pricelist": tariff["remote_id"] if tariff else None,
            "params": {r["name"]: r["value"] for r in store.all(
                "SELECT name, value FROM itemparam WHERE item = ?", (item["id"],))}}


def summarise(kind, seen):
    if kind == "prolong":
        return f"expiry {seen.get('expiredate')}"
    if kind == "changepricelist":
        return f"tariff {seen.get('pricelist')}"
    if kind == "setparam":
        return "the new parameters"
    return f"status {seen.get('status')}"


def next_step(op, module, error):
    """What the admin should do about a failed operation, in one or two sentences."""
    start = f"resellctl ops start {op['id']}"
    name = module["name"]
    if error.kind == errors.BALANCE:
        deficit = error.params.get("deficit")
        currency = error.params.get("currency", "")
        by = f" by at least {deficit} {currency}".rstrip() if deficit else ""
        auto = (" (or let `resellctl checkevent` re-run it once the balance covers it)"
                if module["auto_rerun"] else "")
        return f"Top up the selling account of module {name!r}{by}, then run: {start}{auto}"
    if error.kind == errors.AUTH:
        return (f"Check the username and password of module {name!r} "
                f"(resellctl modules add {name} ... --replace), then run: {start}")
    if error.kind == errors.TRANSIENT:
        return f"When the upstream of module {name!r} answers again, run: {start}"
    cancel = f"resellctl ops cancel {op['id']}"
    if error.type == "no_upstream_item":
        return f"{error.hint} Give this operation up: {cancel}"
    cause = error.hint or "Fix the cause upstream or in the request."
    return f"{cause} Then run: {start} (or give it up: {cancel})"


def months(count):
    """``1 month``, ``12 months``."""
    return f"{count} month{'' if int(count) == 1 else 's'}"


def add_months(date_text, months):
    """``YYYY-MM-DD`` plus whole months, the day clamped to the month's end."""
    date = datetime.date.fromisoformat(date_text) if date_text else datetime.date.today()
    month = date.month - 1 + int(months)
    year, month = date.year + month // 12, month % 12 + 1
    for day in (date.day, 30, 29, 28):
        try:
            return datetime.date(year, month, day).isoformat()
        except ValueError:
            continue
    raise AssertionError("unreachable")

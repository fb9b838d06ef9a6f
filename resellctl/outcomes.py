"""What came of sending an operation, written in the books: accepted (waiting, with its task;
done at once when its change was applied already), failed (the error in its history, no task),
or done in the books alone. Each returns the Outcome the command line prints.

The engine (resellctl.operations) sends; this module records. An order adopted without being
sent (resellctl.adopt) is recorded here too.
"""

import dataclasses
import json

from resellctl import errors, kinds, states
from resellctl.errors import UpstreamError
from resellctl.printable import one_line
from resellctl.states import OpStatus
from resellctl.store import now


@dataclasses.dataclass
class Outcome:
    """What processing one operation came to, with all the command line prints of it."""

    runningoperation: int
    item: int
    status: str  # an OpStatus, or "busy": another process is sending it
    task: int | None = None
    manual: bool = False  # its task waits for staff, not for the upstream
    error: UpstreamError | None = None
    hint: str = ""  # what to do about the error
    note: str = ""
    unsent: bool = False  # not sent at all: the upstream had stopped answering


def accepted(store, op, module, upstream_id=None, note=""):
    """Record ``op`` as taken by its module (linked to ``upstream_id``, for an order): its
    task, its history; done at once when its change was applied already."""
    kind = kinds.kind(op["operation"])
    manual = module["type"] == "manual"
    with store.write():
        conn, stamp = store.conn, now()
        current = store.operation(op["id"])
        if current["status"] == OpStatus.DONE:
            # The matching event was applied while the request was under way.
            return Outcome(op["id"], op["item"], OpStatus.DONE, current["task"], note=note)
        if _refunded_meanwhile(op, current):
            # Its item failed to open, was refunded and unlinked while the answer was on its
            # way: linked now, the order would wait for an opening that never comes.
            error = UpstreamError(
                errors.PERMANENT, f"the upstream failed to open this order and refunded it "
                f"while it was being sent ({current['error_message']}); nothing was linked",
                type="openfail")
            return Outcome(op["id"], op["item"], OpStatus.FAILED, error=error,
                           hint=f"Order it again: resellctl ops start {op['id']}")
        if kind.name == "open" and upstream_id is not None:
            holder = store.one("SELECT id FROM item WHERE upstream_module = ? AND "
                               "upstream_id = ? AND id != ?",
                               (module["id"], str(upstream_id), op["item"]))
            if holder is not None:
                # Two services on one upstream item: a close of either would delete both.
                error = UpstreamError(
                    errors.PERMANENT,
                    f"the upstream answered that this order is its item {upstream_id}, "
                    f"which is service {holder['id']} in the books; nothing was linked",
                    type="item_taken", hint=f"Look at item {upstream_id} upstream, and at "
                    f"`resellctl services show {holder['id']}`.")
                states.failed(conn, op["id"], error.kind, error.message, stamp)
                return Outcome(op["id"], op["item"], OpStatus.FAILED, error=error,
                               hint=next_step(op, module, error))
            states.linked(conn, op["item"], module["id"], upstream_id, stamp)
        item = store.item(op["item"])
        event = None if manual else _seen_done(store, current, item, kind)
        task_id = states.new_task(conn, kind.task_type, item, op["id"], stamp,
                                  closed_by=None if event is None else f"event {event}")
        states.accepted(conn, op["id"], task_id, event is not None, stamp)
        where = f"upstream item {upstream_id}" if upstream_id else "the upstream"
        if manual:
            message = f"operation {op['id']} ({kind.name}) waits for staff: task {task_id}"
        elif event is None:
            message = f"operation {op['id']} ({kind.name}) accepted by {where}; task {task_id}"
        else:
            message = (f"operation {op['id']} ({kind.name}) done: its upstream event {event} "
                       f"was applied already; task {task_id} closed")
        # One line, whatever the upstream showed.
        store.add_history(item["id"], one_line(message + (f"; {note}" if note else "")),
                          runningoperation=op["id"])
    status = OpStatus.WAITING if event is None else OpStatus.DONE
    return Outcome(op["id"], op["item"], status, task_id, manual=manual, note=note)


def _refunded_meanwhile(op, current):
    """Whether an ``openfail`` was applied to the order ``op`` while it was being sent:
    ``current`` (it now) failed so, and unmarked as sent, which only an ``openfail`` does to
    an order marked before it left."""
    return (op["operation"] == "open" and current["status"] == OpStatus.FAILED
            and current["error_type"] == "openfail" and not current["reached"])


def closed_here(store, op):
    """Close a service the upstream has no item for (its order failed upstream, or was
    given up): in the books only, as there is nothing to send."""
    with store.write():
        stamp = now()
        states.item_status(store.conn, op["item"], states.ItemStatus.DELETED, stamp)
        states.done(store.conn, op["id"], stamp)
        store.add_history(op["item"], f"operation {op['id']} (close) done in the books: "
                          "the upstream has no item for it",
                          runningoperation=op["id"])
    return Outcome(op["id"], op["item"], OpStatus.DONE)


def _seen_done(store, op, item, kind):
    """The id of an applied event that shows ``op`` done, or None.

    Such an event arrives before the operation is accepted when checkevent ran while the
    request was under way, or between a lost answer and a restart; waiting for it would
    wait forever. It must be of the change that completes the kind, logged after the
    operation was made, and the books must show the change.
    """
    row = store.one(
        "SELECT event_id FROM eventlog WHERE id > ? AND item = ? AND type = ? AND "
        "outcome = 'applied' ORDER BY id DESC LIMIT 1",
        (op["eventlog_mark"], item["id"], kind.completed_by))
    if row is None:
        return None
    shown = kind.shows(local_view(store, item), json.loads(op["params"] or "{}"),
                       op["baseline"])
    return row["event_id"] if shown else None


def failed(store, op, module, error, counted):
    balance = error.kind == errors.BALANCE
    with store.write():
        if not states.failed(store.conn, op["id"], error.kind, error.message, now(),
                             amount=error.params.get("amount") if balance else None,
                             deficit=error.params.get("deficit") if balance else None,
                             counted=counted):
            # Its event was applied while the request was under way: it is done.
            return Outcome(op["id"], op["item"], OpStatus.DONE, op["task"])
    return Outcome(op["id"], op["item"], OpStatus.FAILED, error=error,
                   hint=next_step(op, module, error))


def local_view(store, item):
    """The books' view of a service, in the shape of ``Client.edit_read``."""
    tariff = store.one("SELECT remote_id FROM pricelist WHERE id = ?", (item["pricelist"],))
    return {"status": str(item["status"]), "expiredate": item["expiredate"],
            "pricelist": tariff["remote_id"] if tariff else None,
            "params": {r["name"]: r["value"] for r in store.all(
                "SELECT name, value FROM itemparam WHERE item = ?", (item["id"],))}}


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
                f"(resellctl modules edit {name} --username USER --password-file FILE), then "
                f"run: {start}")
    if error.kind == errors.TRANSIENT:
        again = (" (it checks what the upstream shows first, and never sends the change twice)"
                 if error.maybe_sent else "")
        return f"When the upstream of module {name!r} answers again, run: {start}{again}"
    cancel = f"resellctl ops cancel {op['id']}"
    if error.type == "no_upstream_item":
        return f"{error.hint} Give this operation up: {cancel}"
    cause = error.hint or "Fix the cause upstream or in the request."
    return f"{cause} Then run: {start} (or give it up: {cancel})"

"""What a reseller asks for: order services, change them, give operations up.

Each request is checked first (bad input raises InputError before anything is written), then
written as a service change plus a running operation in one transaction, then processed by the
operation engine. What a kind of operation is comes from resellctl.kinds; every status change
goes through resellctl.states. Switching a service's module and finishing manual tasks are
resellctl.manual's.
"""

import dataclasses
import os

from resellctl import kinds, manual, operations, states
from resellctl.outcomes import Outcome
from resellctl.errors import InputError, Interrupted, LockHeld, ResellError
from resellctl.states import ItemStatus, OpStatus
from resellctl.printable import one_line
from resellctl.store import now

MAX_QUANTITY = 100


def order(engine, tariff_ref, quantity=1, period=None, client="", params=None, addons=None, *,
          who, progress=None):
    """Order ``quantity`` services of a tariff for ``who`` (the user, kept in the history);
    returns the Outcome of each operation. ``progress(done)`` is called as each operation is
    processed."""
    store = engine.store
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InputError(f"quantity must be between 1 and {MAX_QUANTITY}, not {quantity}")
    tariff = store.tariff(tariff_ref)
    module = store.module(tariff["processingmodule"])
    period = kinds.check_period(store, tariff, period)
    known = store.tariff_addons(tariff["id"])
    params, addons = dict(params or {}), dict(addons or {})
    for name, value in addons.items():
        if name not in known:
            have = ", ".join(known) or "none"
            raise InputError(f"tariff {tariff['name']!r} has no addon {name!r} (it has: {have})")
        if not (value.isascii() and value.isdigit()):
            raise InputError(f"addon {name} needs a whole number, not {value!r}")
    kinds.check_params(params, "open")
    changed = {known[n]["remote_id"]: v for n, v in addons.items() if v != known[n]["value"]}
    resources = {n: addons.get(n, a["value"]) for n, a in known.items()}
    # The request as it will be sent, for all its tries.
    request = {"pricelist": tariff["id"], "pricelist_remote_id": tariff["remote_id"],
               "period": period, "datacenter": module["datacenter"] or None,
               "params": params, "addons": changed}
    kind, term = kinds.kind("open"), kinds.months(period)
    created = []
    with store.write():
        conn, stamp = store.conn, now()
        mark = _eventlog_mark(store)
        for _ in range(quantity):
            item_id = states.new_item(conn, client or "", tariff, module["id"], period, stamp)
            conn.execute("UPDATE item SET remoteid = ? WHERE id = ?",
                         (store.remoteid(item_id), item_id))
            conn.executemany("INSERT INTO itemparam (item, name, value) VALUES (?, ?, ?)",
                             [(item_id, k, v) for k, v in params.items()])
            conn.executemany("INSERT INTO itemaddon (item, name, value) VALUES (?, ?, ?)",
                             [(item_id, k, v) for k, v in resources.items()])
            item = store.item(item_id)
            # The books keep a description and a history of lines, whatever the upstream's
            # tariff name holds.
            desc = kind.describe(item_id, f"{one_line(tariff['name'])}, {term}")
            op_id = states.new_operation(conn, item, kind.name, request, desc, module["id"], mark,
                                         stamp)
            store.add_history(item_id, f"ordered {one_line(tariff['name'])} for {term} "
                                       f"by operation {op_id}", runningoperation=op_id, who=who)
            created.append(op_id)
    return _process_written(engine, created, "The services",
                            "an order is never made twice upstream", progress)


def _process_written(engine, created, written, guard, progress=None):
    """Process the operations just written, in turn; their Outcomes (``progress(done)`` told
    of each). Interrupted, or stopped by an error of resellctl's own, the error says which may
    not have been sent and how to send them: ``written`` ("The services") are in the books,
    and ``guard`` says why sending them again is safe."""
    outcomes = []
    try:
        for outcome in engine.process_many(created):
            outcomes.append(outcome)
            if progress:
                progress(len(outcomes))
    except KeyboardInterrupt:
        raise _unsent(created[len(outcomes):], Interrupted(), written, guard) from None
    except ResellError as error:
        raise _unsent(created[len(outcomes):], error, written, guard)
    return outcomes


def _eventlog_mark(store):
    """The event log's last id: events logged after it may be a new operation's own."""
    return store.one("SELECT coalesce(max(id), 0) FROM eventlog")[0]


def _unsent(op_ids, error, written, guard):
    """``error``, its hint telling which operations written in the books may not have been
    sent, and how to send them."""
    which = f"{op_ids[0]} to {op_ids[-1]}" if len(op_ids) > 1 else f"{op_ids[0]}"
    note = (f"{written} are in the books, but operation(s) {which} may not have been sent. "
            f"Send them with: resellctl ops list --status new -q | resellctl ops start -  "
            f"({guard}), or give them up: resellctl ops cancel ID...")
    error.hint = f"{error.hint}\n{note}" if error.hint else note
    return error


def pending_operation(store, item_id):
    marks = ", ".join("?" * len(states.PENDING))
    return store.one(f"SELECT * FROM runningoperation WHERE item = ? AND status IN ({marks}) "
                     "ORDER BY id LIMIT 1", (item_id, *states.PENDING))


def cancellable(store, op_ids, force=False):
    """The operations ``op_ids`` when cancel() may give up every one; else one InputError
    naming each it would refuse, before anything is done."""
    def check(op_id):
        op = store.operation(op_id)
        refusal = _cancel_refusal(op, force)
        if refusal is not None:
            raise refusal
        return op
    return _each(op_ids, check, "operations")


def _cancel_refusal(op, force):
    """Why ``op`` may not be given up, as an InputError; None when it may."""
    allowed = (*states.STARTABLE, OpStatus.WAITING) if force else states.STARTABLE
    if op["status"] not in allowed:
        return InputError(f"only failed or new operations can be cancelled: operation "
                          f"{op['id']} is {op['status']}",
                          "A waiting operation is in the upstream's hands and completes "
                          "with its event (`resellctl checkevent`); if that event will "
                          "never come (see `resellctl events list --problem`), give it up "
                          "with --force.")
    if (op["operation"] == "open" and op["status"] != OpStatus.WAITING
            and operations.may_have_reached(op)):
        return order_maybe_sent(op)
    return None


def cancel_effect(store, op):
    """What cancel() does to ``op`` and its service, in words, for the question before it."""
    if op["status"] == OpStatus.WAITING:
        effect = f"given up while waiting, its task {op['task']} closed undone"
        item, module = store.item(op["item"]), store.module(op["processingmodule"])
        if module["type"] == "manual" and item["return_on_task"] and item["prev_module"]:
            effect += (f", and the service back under module "
                       f"{store.module(item['prev_module'])['name']}")
        return effect
    if op["operation"] == "open":
        return "given up, and the service closed in the books (the upstream has no item)"
    return "given up: the service takes other changes again"


def cancel(store, op_id, *, who, force=False):
    """Give up a failed or new operation, so that its service takes other changes again;
    ``who`` (the user) is kept in the history.

    A cancelled order closes its service in the books; one that may have reached the upstream
    is refused: `ops start` adopts what the upstream made. Any other change that reached the
    upstream after all still arrives as an event and is applied as the upstream's own.
    ``force`` gives up a waiting operation too (its event will never come: it was rejected,
    or the upstream lost it), closing its task and changing nothing else.
    Returns the operation as it was.
    """
    op = store.operation(op_id)
    claim = operations.claim_operation(store.path, op["id"])
    if claim is None:
        raise LockHeld(f"operation {op['id']} is being sent by another resellctl process right "
                       f"now", f"See `resellctl ops show {op['id']}` in a moment.")
    try:
        op = store.operation(op["id"])  # again under the claim: it may have been sent since
        refusal = _cancel_refusal(op, force)
        if refusal is not None:
            raise refusal
        item = store.item(op["item"])
        waiting = op["status"] == OpStatus.WAITING
        is_order = op["operation"] == "open" and not waiting
        with store.write():
            conn, stamp = store.conn, now()
            # Still as read: checkevent may have applied its event meanwhile.
            if not states.cancelled(conn, op["id"], op["status"], stamp):
                raise InputError(f"operation {op['id']} changed meanwhile; see "
                                 f"`resellctl ops show {op['id']}`")
            if waiting:
                states.task_closed(conn, op["task"], who, stamp, note="operation cancelled")
                message = (f"operation {op['id']} ({op['operation']}) cancelled by {who} while "
                           f"waiting, task {op['task']} closed undone; an event for it that "
                           "comes after all is applied as the upstream's own")
            elif is_order:
                states.item_status(conn, item["id"], ItemStatus.DELETED, stamp)
                why = (f"failed ({op['error_type']})" if op["status"] == OpStatus.FAILED
                       else "not been sent")
                message = (f"closed before it was opened: operation {op['id']} (open) "
                           f"cancelled; it had {why} and the upstream has no item")
            else:
                message = f"operation {op['id']} ({op['operation']}) cancelled by {who}"
            store.add_history(item["id"], message, runningoperation=op["id"], who=who)
            module = store.module(op["processingmodule"])
            if waiting and module["type"] == "manual":
                manual.return_from_manual(store, item["id"], module, op["task"], who)
        return op
    finally:
        os.close(claim)


def order_maybe_sent(op):
    return InputError(
        f"the order of service {op['item']} (operation {op['id']}) may have reached the "
        "upstream before its answer was lost",
        f"Run `resellctl ops start {op['id']}` first: it adopts the upstream's item if "
        "there is one (and charges nothing twice); then close the service.")


def busy_error(item, busy):
    if busy["status"] == OpStatus.WAITING:
        way_out = "Wait for it to complete (`resellctl checkevent`)."
    else:
        way_out = (f"Start it (`resellctl ops start {busy['id']}`), or give it up "
                   f"(`resellctl ops cancel {busy['id']}`).")
    return InputError(f"service {item['id']} already has operation {busy['id']} "
                      f"({busy['operation']}) {busy['status']}", way_out)


def _each(ids, check, what):
    """``check(id)`` for each id, in order; when it raises InputError for any, one InputError
    naming every refusal (the error itself for a lone id), so that nothing is done."""
    results, refusals = [], []
    for one in ids:
        try:
            results.append(check(one))
        except InputError as error:
            refusals.append(error)
    if refusals and len(ids) == 1:
        raise refusals[0]
    if refusals:
        hints = dict.fromkeys(error.hint for error in refusals if error.hint)
        raise InputError(f"{len(refusals)} of {len(ids)} {what} refused, so nothing was done: "
                         + "; ".join(error.message for error in refusals),
                         "\n".join(hints) or None)
    return results


def service_label(store, item):
    """``service 17 (client acme, tariff VDS-1, upstream item 4201 at vds-up)``: a service as a
    person checks it before a change that cannot be undone."""
    client = f"client {item['client']}" if item["client"] else "no client"
    tariff = store.tariff(item["pricelist"])["name"]
    upstream = (f"upstream item {item['upstream_id']} at "
                f"{store.module(item['upstream_module'])['name']}" if item["upstream_id"]
                else "no upstream item")
    return one_line(f"service {item['id']} ({client}, tariff {tariff}, {upstream})")


@dataclasses.dataclass
class Planned:
    """One lifecycle change of one service, checked and not yet written (plan_changes)."""

    item: object  # the service's row as it was checked
    kind: kinds.Kind
    module: object  # the row of the module it is under
    request: dict  # what its operation will send
    detail: str  # for its description and history
    cancels: object = None  # a close that gives up this failed order instead (nothing sent)

    def close_effect(self):
        """What a close does to the service, in words, for the question before it."""
        if self.cancels is not None:
            return (f"its order (operation {self.cancels['id']}) failed without reaching the "
                    "upstream: given up, and the service closed in the books; nothing is sent")
        if self.module["type"] == "manual":
            return (f"a task for staff of manual module {self.module['name']}; closed in the "
                    "books once they close the task")
        if not self.item["upstream_id"]:
            return "closed in the books only: the upstream has no item for it"
        return "deleted upstream at once, which cannot be undone"


def plan_changes(store, item_ids, kind_name, **args):
    """Check the change ``kind_name`` (with ``args``) of each service: the Planned changes that
    make_changes writes and sends, or one InputError naming every service refused, before
    anything is written."""
    kind = kinds.kind(kind_name)
    return _each(item_ids, lambda item_id: _plan(store, item_id, kind, args), "services")


def _plan(store, item_id, kind, args):
    item = store.item(item_id)
    module = store.module(item["processingmodule"])
    busy = pending_operation(store, item["id"])
    if (kind.name == "close" and busy is not None and busy["operation"] == "open"
            and busy["status"] == OpStatus.FAILED and not item["upstream_id"]):
        refusal = _cancel_refusal(busy, force=False)
        if refusal is not None:
            raise refusal
        return Planned(item, kind, module, {}, "", cancels=busy)
    _check_takes(store, item, kind)
    tariff = store.tariff(item["pricelist"])
    request, detail = (kind.prepare(store, item, tariff, module, args) if kind.prepare
                       else ({}, ""))
    return Planned(item, kind, module, request, detail)


def _check_takes(store, item, kind):
    """InputError unless the service may be asked for a change of ``kind`` now."""
    busy = pending_operation(store, item["id"])
    if busy is not None:
        raise busy_error(item, busy)
    refusal = kind.refusal(item)
    if refusal:
        raise InputError(refusal)


def make_changes(engine, planned, *, who):
    """Write the operation of each Planned change (plan_changes), all in one transaction, and
    send them; ``who`` (the user) is kept in the history. The Outcome of each, in order."""
    store = engine.store
    outcomes = {}
    for change in planned:
        if change.cancels is not None:
            # Through cancel(): it holds the operation's claim, so checkevent cannot be
            # re-running the order for funds while the service is closed under it.
            cancel(store, change.cancels["id"], who=who)
            outcomes[change.item["id"]] = Outcome(
                change.cancels["id"], change.item["id"], OpStatus.CANCELLED)
    created = []
    with store.write():
        mark, stamp = _eventlog_mark(store), now()
        for change in planned:
            if change.cancels is not None:
                continue
            # Again under the write lock: another command may have asked for a change, or the
            # upstream changed the service, since it was checked (and a person asked).
            item = store.item(change.item["id"])
            _check_takes(store, item, change.kind)
            op_id = states.new_operation(store.conn, item, change.kind.name, change.request,
                                         change.kind.describe(item["id"], change.detail),
                                         item["processingmodule"], mark, stamp)
            detail = f"({change.detail}) " if change.detail else ""
            store.add_history(item["id"], f"requested: {change.kind.verb} {detail}"
                                          f"by operation {op_id}", runningoperation=op_id,
                              who=who)
            created.append(op_id)
    for outcome in _process_written(engine, created, "The changes",
                                    "none is made twice upstream"):
        outcomes[outcome.item] = outcome
    return [outcomes[change.item["id"]] for change in planned]

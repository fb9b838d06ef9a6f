"""What a reseller asks for: order services, change them, switch their module, close tasks.

Each request is checked first (bad input raises InputError before anything is written), then
written as a service change plus a running operation in one transaction, then processed by the
operation engine. What a kind of operation is comes from resellctl.kinds; every status change
goes through resellctl.states.
"""

import json
import os

from resellctl import kinds, operations, states
from resellctl.applier import Applier
from resellctl.errors import InputError, Interrupted, LockHeld, ResellError
from resellctl.states import ItemStatus, OpStatus
from resellctl.printable import one_line
from resellctl.store import now

MAX_QUANTITY = 100


def order(engine, tariff_ref, quantity=1, period=None, client="", params=None, addons=None,
          progress=None):
    """Order ``quantity`` services of a tariff; returns the Outcome of each operation.
    ``progress(done)`` is called as each operation is processed."""
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
                                       f"by operation {op_id}", runningoperation=op_id)
            created.append(op_id)
    outcomes = []
    try:
        for outcome in engine.process_many(created):
            outcomes.append(outcome)
            if progress:
                progress(len(outcomes))
    except KeyboardInterrupt:
        raise _unsent(created[len(outcomes):], Interrupted()) from None
    except ResellError as error:
        raise _unsent(created[len(outcomes):], error)
    return outcomes


def _eventlog_mark(store):
    """The event log's last id: events logged after it may be a new operation's own."""
    return store.one("SELECT coalesce(max(id), 0) FROM eventlog")[0]


def _unsent(op_ids, error):
    """``error``, its hint telling which operations of an order (written in the books) may
    not have been sent, and how to send them."""
    which = f"{op_ids[0]} to {op_ids[-1]}" if len(op_ids) > 1 else f"{op_ids[0]}"
    note = (f"The services are in the books, but operation(s) {which} may not have been sent. "
            "Send them with: resellctl ops list --status new -q | resellctl ops start -  (an "
            "order is never made twice upstream), or give them up: resellctl ops cancel ID...")
    error.hint = f"{error.hint}\n{note}" if error.hint else note
    return error


def pending_operation(store, item_id):
    marks = ", ".join("?" * len(states.PENDING))
    return store.one(f"SELECT * FROM runningoperation WHERE item = ? AND status IN ({marks}) "
                     "ORDER BY id LIMIT 1", (item_id, *states.PENDING))


def cancel(store, op_id, who="", force=False):
    """Give up a failed or new operation, so that its service takes other changes again.

    A cancelled order closes its service in the books; one that may have reached the upstream
    is refused: `ops start` adopts what the upstream made. Any other change that reached the
    upstream after all still arrives as an event and is applied as the upstream's own.
    ``force`` gives up a waiting operation too (its event will never come: it was rejected,
    or the upstream lost it), closing its task and changing nothing else.
    Returns the operation as it was.
    """
    allowed = (*states.STARTABLE, OpStatus.WAITING) if force else states.STARTABLE
    op = store.operation(op_id)
    claim = operations.claim_operation(store.path, op["id"])
    if claim is None:
        raise LockHeld(f"operation {op['id']} is being sent by another resellctl process right "
                       f"now", f"See `resellctl ops show {op['id']}` in a moment.")
    try:
        op = store.operation(op["id"])  # again under the claim: it may have been sent since
        if op["status"] not in allowed:
            raise InputError(f"only failed or new operations can be cancelled: operation "
                             f"{op['id']} is {op['status']}",
                             "A waiting operation is in the upstream's hands and completes "
                             "with its event (`resellctl checkevent`); if that event will "
                             "never come (see `resellctl events list --problem`), give it up "
                             "with --force.")
        item = store.item(op["item"])
        waiting = op["status"] == OpStatus.WAITING
        is_order = op["operation"] == "open" and not waiting
        if is_order and operations.may_have_reached(op):
            raise order_maybe_sent(item, op)
        who = who or "staff"
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
            store.add_history(item["id"], message, runningoperation=op["id"])
            module = store.module(op["processingmodule"])
            if waiting and module["type"] == "manual":
                return_from_manual(store, item["id"], module, op["task"])
        return op
    finally:
        os.close(claim)


def order_maybe_sent(item, op):
    return InputError(
        f"the order of service {item['id']} (operation {op['id']}) may have reached the "
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


def request_change(engine, item_id, kind_name, **args):
    """Ask for one lifecycle change of a service; returns the Outcome of its operation."""
    store = engine.store
    kind = kinds.kind(kind_name)
    item = store.item(item_id)
    busy = pending_operation(store, item["id"])
    if (kind.name == "close" and busy is not None and busy["operation"] == "open"
            and busy["status"] == OpStatus.FAILED and not item["upstream_id"]):
        # Through cancel(): it holds the operation's claim, so checkevent cannot be
        # re-running the order for funds while the service is closed under it.
        cancel(store, busy["id"])
        return operations.Outcome(busy["id"], item["id"], OpStatus.CANCELLED)
    if busy is not None:
        raise busy_error(item, busy)
    refusal = kind.refusal(item)
    if refusal:
        raise InputError(refusal)
    tariff = store.tariff(item["pricelist"])
    module = store.module(item["processingmodule"])
    request, detail = (kind.prepare(store, item, tariff, module, args) if kind.prepare
                       else ({}, ""))
    with store.write():
        # Again under the write lock: another command may have asked for a change meanwhile.
        busy = pending_operation(store, item["id"])
        if busy is not None:
            raise busy_error(item, busy)
        op_id = states.new_operation(store.conn, item, kind.name, request,
                                     kind.describe(item["id"], detail),
                                     item["processingmodule"], _eventlog_mark(store), now())
        store.add_history(item["id"], f"requested: {kind.verb} "
                                      f"{('(' + detail + ') ') if detail else ''}"
                                      f"by operation {op_id}", runningoperation=op_id)
    return engine.process(op_id)


def set_module(store, item_id, module_ref, force=False, until_task_closed=False):
    """Switch a service's processing module; returns (old module name, new module name)."""
    item = store.item(item_id)
    new = store.module(module_ref)
    old = store.module(item["processingmodule"])
    if new["id"] == old["id"]:
        raise InputError(f"service {item['id']} is already under module {new['name']!r}")
    if until_task_closed and new["type"] != "manual":
        raise InputError(f"--until-task-closed needs a manual module; {new['name']!r} is a "
                         f"{new['type']} module")
    if new["type"] == "billmanager":
        # The upstream that sells its tariff holds the service, or will once its order goes
        # through: any other would be sent an item id it does not hold.
        tariff = store.tariff(item["pricelist"])
        home = store.module(item["upstream_module"] or tariff["processingmodule"])
        if home["id"] != new["id"]:
            raise InputError(f"service {item['id']} lives upstream in module {home['name']!r}, "
                             f"not {new['name']!r}",
                             f"Its tariff {tariff['name']!r} is sold by {home['name']!r}.")
    waiting = store.one("SELECT id, operation, task FROM runningoperation WHERE item = ? AND "
                        "status = ? AND processingmodule = ? LIMIT 1",
                        (item["id"], OpStatus.WAITING, old["id"]))
    if waiting is not None and not force:
        finish = (f"Close its task when the work is done (`resellctl tasks close "
                  f"{waiting['task']}`)" if old["type"] == "manual"
                  else "Let it complete (`resellctl checkevent`)")
        raise InputError(f"operation {waiting['id']} ({waiting['operation']}) of service "
                         f"{item['id']} is waiting under module {old['name']!r}",
                         f"{finish}, or switch anyway with --force.")
    with store.write():
        store.conn.execute(
            "UPDATE item SET processingmodule = ?, prev_module = ?, return_on_task = ?, "
            "mdate = ? WHERE id = ?",
            (new["id"], old["id"], 1 if until_task_closed else 0, now(), item["id"]))
        note = " until its manual task is closed" if until_task_closed else ""
        store.add_history(item["id"], f"processing module {old['name']} -> {new['name']}{note}",
                          source="module")
    return old["name"], new["name"]


def close_task(store, task_id, note="", who=""):
    """Finish a manual task: apply its change in the books, as the upstream's change of that
    kind would be applied, and set the operation done. Returns (operation, module name the
    service went back to or None)."""
    task = store.task(task_id)
    if task["status"] != states.TaskStatus.OPEN:
        raise InputError(f"task {task['id']} is closed already")
    op = store.operation(task["runningoperation"])
    module = store.module(op["processingmodule"])
    if module["type"] != "manual":
        raise InputError(f"task {task['id']} waits for the upstream of module "
                         f"{module['name']!r}; it closes itself",
                         "Run `resellctl checkevent` to apply the upstream's events.")
    kind = kinds.kind(op["operation"])
    who = who or "staff"
    with store.write():
        conn, stamp = store.conn, now()
        # Closed once even when two people close it at the same moment.
        if not states.task_closed(conn, task["id"], who, stamp, note=note):
            raise InputError(f"task {task['id']} is closed already")
        item = dict(store.item(task["item"]))
        tariff = store.tariff(item["pricelist"])
        change = kind.local(store, item, _request(op))
        applier = Applier(conn, tariff["processingmodule"], stamp, source="task")
        applier.apply(change, item, {(item["id"], kind.name): op},
                      f"task {task['id']} ({task['type']}) closed by {who}"
                      + (f" ({note})" if note else ""), closed_by=who)
        applier.flush()
        returned = return_from_manual(store, item["id"], module, task["id"])
    return op, returned


def _request(op):
    return json.loads(op["params"] or "{}")


def return_from_manual(store, item_id, module, task_id):
    """``set-module --until-task-closed``: the service's manual task is closed, so switch it
    back to its earlier module. Call inside ``store.write()``; the module's name, or None."""
    item = store.item(item_id)
    if not (item["return_on_task"] and item["prev_module"]):
        return None
    back = store.module(item["prev_module"])
    store.conn.execute("UPDATE item SET processingmodule = ?, prev_module = ?, "
                       "return_on_task = 0, mdate = ? WHERE id = ?",
                       (back["id"], module["id"], now(), item["id"]))
    store.add_history(item["id"], f"processing module {module['name']} -> {back['name']} "
                                  f"(task {task_id} closed)", source="module")
    return back["name"]

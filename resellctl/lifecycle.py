"""What a reseller asks for: order services, change them, switch their module, close tasks.

Each request is checked first (bad input raises InputError before anything is written), then
written as a service change plus a running operation in one transaction, then processed by the
operation engine.
"""

import datetime
import json
import os

from resellctl import operations
from resellctl.errors import InputError, LockHeld, ResellError
from resellctl.printable import one_line
from resellctl.store import now

MAX_QUANTITY = 100
STATUS_NAMES = {1: "ordered", 2: "active", 3: "suspended", 4: "deleted", 5: "processing"}


def check_period(store, tariff, period):
    """The period to use (the shortest one sold, when None); InputError if not sold."""
    periods = store.tariff_periods(tariff["id"])
    if not periods:
        raise InputError(f"tariff {tariff['name']!r} has no prices",
                         "Re-import it with `resellctl tariffs import MODULE`.")
    if period is None:
        positive = [p for p in periods if p > 0]
        return min(positive) if positive else min(periods)
    if period not in periods:
        sold = ", ".join(str(p) for p in periods)
        raise InputError(f"tariff {tariff['name']!r} is not sold for {period} months "
                         f"(periods: {sold})")
    return period


def order(store, engine, tariff_ref, quantity=1, period=None, client="", params=None,
          addons=None):
    """Order ``quantity`` services of a tariff; returns the Outcome of each operation."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InputError(f"quantity must be between 1 and {MAX_QUANTITY}, not {quantity}")
    tariff = store.tariff(tariff_ref)
    module = store.module(tariff["processingmodule"])
    period = check_period(store, tariff, period)
    known = store.tariff_addons(tariff["id"])
    params, addons = dict(params or {}), dict(addons or {})
    for name, value in addons.items():
        if name not in known:
            have = ", ".join(known) or "none"
            raise InputError(f"tariff {tariff['name']!r} has no addon {name!r} (it has: {have})")
        if not (value.isascii() and value.isdigit()):
            raise InputError(f"addon {name} needs a whole number, not {value!r}")
    check_params(params, "open")
    changed = {known[n]["remote_id"]: v for n, v in addons.items() if v != known[n]["value"]}
    resources = {n: addons.get(n, a["value"]) for n, a in known.items()}
    request = {"params": params, "addons": changed}
    created = []
    with store.write():
        for _ in range(quantity):
            item_id = store.conn.execute(
                "INSERT INTO item (client, pricelist, itemtype, status, processingmodule, period, "
                "cdate, mdate) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                (client or "", tariff["id"], tariff["itemtype"], module["id"], period, now(),
                 now())).lastrowid
            store.conn.execute("UPDATE item SET remoteid = ? WHERE id = ?",
                               (store.remoteid(item_id), item_id))
            store.conn.executemany("INSERT INTO itemparam (item, name, value) VALUES (?, ?, ?)",
                                   [(item_id, k, v) for k, v in params.items()])
            store.conn.executemany("INSERT INTO itemaddon (item, name, value) VALUES (?, ?, ?)",
                                   [(item_id, k, v) for k, v in resources.items()])
            item = store.item(item_id)
            term = operations.months(period)
            # The books keep a description and a history of lines, whatever the upstream's
            # tariff name holds.
            desc = operations.describe("open", item_id, f"{one_line(tariff['name'])}, {term}")
            op_id = operations.create(store, item, "open", request, desc, module["id"])
            store.add_history(item_id, f"ordered {one_line(tariff['name'])} for {term} "
                                       f"by operation {op_id}", runningoperation=op_id)
            created.append(op_id)
    outcomes = []
    try:
        for outcome in engine.process_many(created):
            outcomes.append(outcome)
    except KeyboardInterrupt:
        raise _unsent(created[len(outcomes):], ResellError("interrupted")) from None
    except ResellError as error:
        raise _unsent(created[len(outcomes):], error)
    return outcomes


def _unsent(op_ids, error):
    """``error``, its hint telling which operations of an order (written in the books) may
    not have been sent, and how to send them."""
    which = f"{op_ids[0]} to {op_ids[-1]}" if len(op_ids) > 1 else f"{op_ids[0]}"
    note = (f"The services are in the books, but operation(s) {which} may not have been sent. "
            "Send them with: resellctl ops list --status new -q | resellctl ops start -  (an "
            "order is never made twice upstream), or give them up: resellctl ops cancel ID...")
    error.hint = f"{error.hint}\n{note}" if error.hint else note
    return error


def check_params(params, kind):
    """InputError, before anything is written, for a parameter that the request of ``kind``
    sets itself (the client would refuse to send it, and the operation would stay unsendable),
    or that names a resource (``addon_<id>``): the upstream would provision it while the books
    kept the tariff's value, so resources are set through --addon only, which checks them."""
    from resellctl import upstream

    fields = upstream.ORDER_FIELDS if kind == "open" else upstream.EDIT_FIELDS
    upstream.check_params(params, fields)
    resource = next((name for name in params if name.lower().startswith("addon_")), None)
    if resource is not None:
        how = ("e.g. `resellctl order VDS-1 --addon disk=40`; a tariff's resources are in "
               "`resellctl tariffs list`" if kind == "open" else
               "when the service is ordered; later they change with its tariff "
               "(`resellctl services change-tariff`)")
        raise InputError(f"parameter {resource!r} names a resource, which no parameter may set",
                         f"Set resources with --addon NAME=VALUE, {how}.")


def pending_operation(store, item_id):
    marks = ", ".join("?" * len(operations.PENDING))
    return store.one(f"SELECT * FROM runningoperation WHERE item = ? AND status IN ({marks}) "
                     "ORDER BY id LIMIT 1", (item_id, *operations.PENDING))


def cancel(store, op_id, who="", force=False):
    """Give up a failed or new operation, so that its service takes other changes again.

    A cancelled order closes its service in the books; one that may have reached the upstream
    is refused: `ops start` adopts what the upstream made. Any other change that reached the
    upstream after all still arrives as an event and is applied as the upstream's own.
    ``force`` gives up a waiting operation too (its event will never come: it was rejected,
    or the upstream lost it), closing its task and changing nothing else.
    Returns the operation as it was.
    """
    allowed = ("failed", "new", "waiting") if force else ("failed", "new")
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
        waiting = op["status"] == "waiting"
        is_order = op["operation"] == "open" and not waiting
        if is_order and operations.may_have_reached(store, op):
            raise order_maybe_sent(item, op)
        with store.write():
            # Still as read: checkevent may have applied its event meanwhile.
            if not store.conn.execute("UPDATE runningoperation SET status = 'cancelled', "
                                      "mdate = ? WHERE id = ? AND status = ?",
                                      (now(), op["id"], op["status"])).rowcount:
                raise InputError(f"operation {op['id']} changed meanwhile; see "
                                 f"`resellctl ops show {op['id']}`")
            if waiting:
                store.conn.execute("UPDATE task SET status = 'closed', closedate = ?, "
                                   "closedby = ?, note = 'operation cancelled' "
                                   "WHERE id = ? AND status = 'open'",
                                   (now(), who or "staff", op["task"]))
                message = (f"operation {op['id']} ({op['operation']}) cancelled by "
                           f"{who or 'staff'} while waiting, task {op['task']} closed undone; "
                           "an event for it that comes after all is applied as the upstream's "
                           "own")
            elif is_order:
                store.conn.execute("UPDATE item SET status = 4, mdate = ? WHERE id = ?",
                                   (now(), item["id"]))
                why = (f"failed ({op['error_type']})" if op["status"] == "failed"
                       else "not been sent")
                message = (f"closed before it was opened: operation {op['id']} (open) "
                           f"cancelled; it had {why} and the upstream has no item")
            else:
                message = (f"operation {op['id']} ({op['operation']}) cancelled by "
                           f"{who or 'staff'}")
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
    if busy["status"] == "waiting":
        way_out = "Wait for it to complete (`resellctl checkevent`)."
    else:
        way_out = (f"Start it (`resellctl ops start {busy['id']}`), or give it up "
                   f"(`resellctl ops cancel {busy['id']}`).")
    return InputError(f"service {item['id']} already has operation {busy['id']} "
                      f"({busy['operation']}) {busy['status']}", way_out)


def request_change(store, engine, item_id, kind, **args):
    """Ask for one lifecycle change of a service; returns the Outcome of its operation."""
    item = store.item(item_id)
    status = item["status"]
    name = STATUS_NAMES.get(status, str(status))
    busy = pending_operation(store, item["id"])
    if (kind == "close" and busy is not None and busy["operation"] == "open"
            and busy["status"] == "failed" and not item["upstream_id"]):
        # Through cancel(): it holds the operation's claim, so checkevent cannot be
        # re-running the order for funds while the service is closed under it.
        cancel(store, busy["id"])
        return operations.Outcome(busy["id"], item["id"], "cancelled")
    if busy is not None:
        raise busy_error(item, busy)
    if status == 4:
        raise InputError(f"service {item['id']} is deleted")
    if status in (1, 5) and kind != "close":
        raise InputError(f"service {item['id']} is {name}: wait until it is open "
                         "(`resellctl checkevent`)")
    if kind == "suspend" and status != 2:
        raise InputError(f"service {item['id']} is {name}, not active: nothing to suspend")
    if kind == "resume" and status != 3:
        raise InputError(f"service {item['id']} is {name}, not suspended: nothing to resume")
    tariff = store.tariff(item["pricelist"])
    module = store.module(item["processingmodule"])
    params, detail = {}, ""
    if kind == "prolong":
        period = args.get("period")
        params["period"] = check_period(store, tariff, item["period"] if period is None
                                        else period)
        detail = operations.months(params["period"])
    elif kind == "changepricelist":
        new = store.tariff(args["tariff"])
        check_tariff_change(store, item, tariff, new, module)
        params.update(pricelist=new["id"], pricelist_remote_id=new["remote_id"])
        detail = one_line(f"{tariff['name']} -> {new['name']}")
    elif kind == "setparam":
        params["params"] = dict(args["params"])
        check_params(params["params"], "setparam")
        detail = ", ".join(f"{k}={v}" for k, v in params["params"].items())
    with store.write():
        # Again under the write lock: another command may have asked for a change meanwhile.
        busy = pending_operation(store, item["id"])
        if busy is not None:
            raise busy_error(item, busy)
        op_id = operations.create(store, item, kind, params,
                                  operations.describe(kind, item["id"], detail))
        store.add_history(item["id"], f"requested: {operations.KINDS[kind][1]} "
                                      f"{('(' + detail + ') ') if detail else ''}"
                                      f"by operation {op_id}", runningoperation=op_id)
    return engine.process(op_id)


def check_tariff_change(store, item, old, new, module):
    """SEED's rule: a vds tariff change that changes the disk needs a manual module."""
    if new["id"] == old["id"]:
        raise InputError(f"service {item['id']} already has tariff {new['name']!r}")
    if new["itemtype"] != item["itemtype"]:
        raise InputError(f"tariff {new['name']!r} is for {new['itemtype']}, "
                         f"service {item['id']} is a {item['itemtype']}")
    if new["processingmodule"] != old["processingmodule"]:
        # Under a manual module too: the service still lives with its tariff's upstream.
        home = store.module(old["processingmodule"])
        raise InputError(f"tariff {new['name']!r} is not sold by module {home['name']!r}, "
                         f"which sells service {item['id']}")
    if item["itemtype"] != "vds" or module["type"] != "billmanager":
        return
    # The service's own disk: it may have been ordered larger than its tariff's.
    old_disk = store.one("SELECT value FROM itemaddon WHERE item = ? AND name = 'disk'",
                         (item["id"],)) or store.tariff_addons(old["id"]).get("disk")
    new_disk = store.tariff_addons(new["id"]).get("disk")
    old_value = old_disk["value"] if old_disk else None
    new_value = new_disk["value"] if new_disk else None
    if old_value != new_value:
        manual = store.one("SELECT name FROM processingmodule WHERE type = 'manual' "
                           "ORDER BY id LIMIT 1")
        manual_name = manual["name"] if manual else "manual"
        add = "" if manual else ("  0. resellctl modules add manual --type manual\n")
        raise InputError(
            f"changing service {item['id']} from {old['name']} ({old_value} GB disk) to "
            f"{new['name']} ({new_value} GB disk) changes the disk size, which the upstream "
            f"cannot do automatically for a virtual server",
            "Do it by hand under a manual processing module:\n"
            f"{add}"
            f"  1. resellctl set-module {item['id']} {manual_name} --until-task-closed\n"
            f"  2. resellctl services change-tariff {item['id']} {one_line(new['name'])}\n"
            f"  3. resize the server, then: resellctl tasks close TASK --note 'disk resized'\n"
            f"  4. (without --until-task-closed) resellctl set-module {item['id']} "
            f"{module['name']}")


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
                        "status = 'waiting' AND processingmodule = ? LIMIT 1",
                        (item["id"], old["id"]))
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
    """Finish a manual task: apply its change locally, set the operation done."""
    task = store.task(task_id)
    if task["status"] != "open":
        raise InputError(f"task {task['id']} is closed already")
    op = store.operation(task["runningoperation"])
    module = store.module(op["processingmodule"])
    if module["type"] != "manual":
        raise InputError(f"task {task['id']} waits for the upstream of module "
                         f"{module['name']!r}; it closes itself",
                         "Run `resellctl checkevent` to apply the upstream's events.")
    params = json.loads(op["params"] or "{}")
    with store.write():
        stamp = now()
        # Closed once even when two people close it at the same moment.
        if not store.conn.execute("UPDATE task SET status = 'closed', closedate = ?, note = ?, "
                                  "closedby = ? WHERE id = ? AND status = 'open'",
                                  (stamp, note, who, task["id"])).rowcount:
            raise InputError(f"task {task['id']} is closed already")
        item = store.item(task["item"])
        apply_locally(store, item, op["operation"], params)
        store.conn.execute("UPDATE runningoperation SET status = 'done', mdate = ? WHERE id = ?",
                           (stamp, op["id"]))
        store.add_history(item["id"], f"task {task['id']} ({task['type']}) closed by "
                                      f"{who or 'staff'}" + (f": {note}" if note else ""),
                          source="task", runningoperation=op["id"])
        returned = return_from_manual(store, item["id"], module, task["id"])
    return op, returned


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


def apply_locally(store, item, kind, params):
    """Carry out an operation's change in the books (a closed manual task)."""
    conn, stamp = store.conn, now()
    if kind == "open":
        expiry = operations.add_months(datetime.date.today().isoformat(), item["period"] or 1)
        conn.execute("UPDATE item SET status = 2, expiredate = ?, mdate = ? WHERE id = ?",
                     (expiry, stamp, item["id"]))
    elif kind == "prolong":
        expiry = operations.add_months(item["expiredate"], params["period"])
        conn.execute("UPDATE item SET expiredate = ?, mdate = ? WHERE id = ?",
                     (expiry, stamp, item["id"]))
    elif kind in ("suspend", "resume", "close"):
        status = {"suspend": 3, "resume": 2, "close": 4}[kind]
        conn.execute("UPDATE item SET status = ?, mdate = ? WHERE id = ?",
                     (status, stamp, item["id"]))
    elif kind == "changepricelist":
        conn.execute("UPDATE item SET pricelist = ?, mdate = ? WHERE id = ?",
                     (params["pricelist"], stamp, item["id"]))
        conn.executemany(
            "INSERT INTO itemaddon (item, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (item, name) DO UPDATE SET value = excluded.value",
            [(item["id"], a["intname"], a["value"])
             for a in store.tariff_addons(params["pricelist"]).values()])
    elif kind == "setparam":
        conn.executemany(
            "INSERT INTO itemparam (item, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (item, name) DO UPDATE SET value = excluded.value",
            [(item["id"], k, str(v)) for k, v in params["params"].items()])

"""Manual processing: switching a service's processing module (to a manual one and back),
and finishing the tasks a manual module makes for staff.

A closed manual task changes the books as the upstream's change of its kind would: the same
applier (resellctl.applier) applies it, so the service's history reads alike.
"""

import dataclasses
import json

from resellctl import kinds, states
from resellctl.applier import Applier
from resellctl.errors import InputError
from resellctl.states import OpStatus
from resellctl.store import now


@dataclasses.dataclass
class ModuleSwitch:
    """A switch of a service's processing module, checked and not yet made."""

    item: object
    old: object  # the module it leaves
    new: object  # the module it goes to
    waiting: object  # an operation waiting under the old module (only with force), or None


def check_module_switch(store, item_id, module_ref, force=False, until_task_closed=False):
    """Check a switch of a service's processing module: the ModuleSwitch, or InputError."""
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
    return ModuleSwitch(item, old, new, waiting)


def set_module(store, item_id, module_ref, *, who, force=False, until_task_closed=False):
    """Switch a service's processing module, for ``who`` (the user, kept in the history);
    returns (old module name, new module name)."""
    switch = check_module_switch(store, item_id, module_ref, force, until_task_closed)
    item, old, new = switch.item, switch.old, switch.new
    with store.write():
        store.conn.execute(
            "UPDATE item SET processingmodule = ?, prev_module = ?, return_on_task = ?, "
            "mdate = ? WHERE id = ?",
            (new["id"], old["id"], 1 if until_task_closed else 0, now(), item["id"]))
        note = " until its manual task is closed" if until_task_closed else ""
        store.add_history(item["id"], f"processing module {old['name']} -> {new['name']}{note}",
                          source="module", who=who)
    return old["name"], new["name"]


def close_task(store, task_id, note="", *, who):
    """Finish a manual task: apply its change in the books, as the upstream's change of that
    kind would be applied, and set the operation done; ``who`` (the user) closes it. Returns
    (operation, module name the service went back to or None)."""
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
    with store.write():
        conn, stamp = store.conn, now()
        item = dict(store.item(task["item"]))
        if item["status"] == states.ItemStatus.DELETED and kind.name != "close":
            # Its change would bring a deleted service back to life in the books.
            raise InputError(f"service {item['id']} was deleted meanwhile: task {task['id']} "
                             f"({task['type']}) has nothing left to change",
                             f"Give its operation up: resellctl ops cancel {op['id']} --force")
        # Closed once even when two people close it at the same moment.
        if not states.task_closed(conn, task["id"], who, stamp, note=note):
            raise InputError(f"task {task['id']} is closed already")
        tariff = store.tariff(item["pricelist"])
        change = kind.local(store, item, _request(op))
        applier = Applier(conn, tariff["processingmodule"], stamp, source="task", who=who)
        applier.apply(change, item, {(item["id"], kind.name): op},
                      f"task {task['id']} ({task['type']}) closed by {who}"
                      + (f" ({note})" if note else ""), closed_by=who)
        applier.flush()
        returned = return_from_manual(store, item["id"], module, task["id"], who)
    return op, returned


def _request(op):
    return json.loads(op["params"] or "{}")


def return_from_manual(store, item_id, module, task_id, who):
    """``set-module --until-task-closed``: the service's manual task is closed (by ``who``), so
    switch it back to its earlier module. Call inside ``store.write()``; the module's name, or
    None."""
    item = store.item(item_id)
    if not (item["return_on_task"] and item["prev_module"]):
        return None
    back = store.module(item["prev_module"])
    store.conn.execute("UPDATE item SET processingmodule = ?, prev_module = ?, "
                       "return_on_task = 0, mdate = ? WHERE id = ?",
                       (back["id"], module["id"], now(), item["id"]))
    store.add_history(item["id"], f"processing module {module['name']} -> {back['name']} "
                                  f"(task {task_id} closed)", source="module", who=who)
    return back["name"]

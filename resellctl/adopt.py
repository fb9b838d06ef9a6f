"""Taking upstream items into the books without ordering them.

``services import`` adopts the items of a module's account that no service is linked to (the
services it had before resellctl, say): nothing is ordered, nothing charged, the history says
imported. ``services link`` links a service to an upstream item by hand, where resellctl cannot
tell which item an order whose answer was lost made (several candidates), or a service was
made upstream by other means.
"""

import os

from resellctl import errors, outcomes, states
from resellctl.errors import InputError, UpstreamError
from resellctl.operations import claim_operation
from resellctl.compare import addons_of
from resellctl.poll import itemtypes
from resellctl.states import ItemStatus, OpStatus
from resellctl.store import now


def foreign(store, client, module):
    """The items of the module's account that no service is linked to: ``(itemtype, id)``,
    in the account's lists (a dialect that lists; the ``events`` one does not)."""
    linked = _linked(store, module)
    for itemtype in itemtypes(store, module["id"]):
        for page in client.pages(itemtype):
            for row in page:
                if row["id"] not in linked:
                    yield itemtype, row["id"]


def import_items(store, upstreams, module_ref, upstream_ids=(), client_name="", who=None):
    """Adopt upstream items as services (all that no service is linked to, or those named).
    Returns ``(imported, skipped)``: dicts of each imported service, and a sentence for each
    item passed over."""
    module = store.module(module_ref)
    if module["type"] != "billmanager":
        raise InputError(f"module {module['name']!r} is a manual module: it has no upstream")
    client = upstreams.client(module)
    if upstream_ids:
        wanted = _typed(store, client, module, upstream_ids)
    elif client.keeps_in_step == "poll":
        wanted = list(foreign(store, client, module))
    else:
        raise InputError(f"module {module['name']!r}'s upstream (dialect {module['api']}) "
                         "offers no list of its services",
                         "Name the items to import with --upstream-id ID.")
    views, skipped = [], []
    for itemtype, upstream_id in wanted:
        view = client.edit_read(itemtype, upstream_id)
        tariff = store.one("SELECT * FROM pricelist WHERE processingmodule = ? AND "
                           "remote_id = ?", (module["id"], view.get("pricelist")))
        if tariff is None:
            skipped.append(f"upstream item {upstream_id}: its tariff {view.get('pricelist')!r} "
                           f"is not imported (resellctl tariffs import {module['name']})")
            continue
        if view.get("status") == str(int(ItemStatus.DELETED)):
            # A server gone upstream is no service to resell.
            skipped.append(f"upstream item {upstream_id}: deleted upstream")
            continue
        if tariff["itemtype"] != itemtype:
            skipped.append(f"upstream item {upstream_id}: listed as {itemtype}, but its tariff "
                           f"{tariff['name']} sells {tariff['itemtype']}")
            continue
        owner = _ordered_by(store, view)
        if owner is not None:
            # An order of ours whose answer was lost: imported, its order would look for it,
            # find it linked, and make (and charge) the service again.
            skipped.append(f"upstream item {upstream_id}: it carries the remoteid of service "
                           f"{owner['id']}, whose order made it" + (
                               "" if owner["upstream_id"] else
                               f" (resellctl services link {owner['id']} {upstream_id})"))
            continue
        views.append((upstream_id, view, tariff))
    imported = []
    with store.write():
        stamp = now()
        linked = _linked(store, module)
        for upstream_id, view, tariff in views:
            if upstream_id in linked:
                skipped.append(f"upstream item {upstream_id}: linked meanwhile")
                continue
            imported.append(_add(store, module, upstream_id, view, tariff, client_name, who,
                                 stamp))
            linked.add(upstream_id)
    return imported, skipped


def _add(store, module, upstream_id, view, tariff, client_name, who, stamp):
    conn = store.conn
    status = int(view["status"]) if view.get("status") else ItemStatus.ACTIVE
    period = view.get("period") or min(
        (p for p in store.tariff_periods(tariff["id"]) if p > 0), default=1)
    item_id = states.new_item(conn, client_name or "", tariff, module["id"], period, stamp)
    states.linked(conn, item_id, module["id"], upstream_id, stamp)
    states.item_status(conn, item_id, status, stamp)
    remoteid = view.get("remoteid")
    if remoteid and store.one("SELECT 1 FROM item WHERE remoteid = ?", (remoteid,)):
        remoteid = None  # shown by another item of this import too: the books keep it once
    conn.execute("UPDATE item SET expiredate = ?, remoteid = ?, compared = ? WHERE id = ?",
                 (view.get("expiredate"), remoteid, stamp, item_id))
    params = view.get("params") or {}
    addons = {**{a["intname"]: a["value"] for a in store.tariff_addons(tariff["id"]).values()},
              **addons_of(store, module["id"], view)}
    conn.executemany("INSERT INTO itemparam (item, name, value) VALUES (?, ?, ?)",
                     [(item_id, k, v) for k, v in params.items()])
    conn.executemany("INSERT INTO itemaddon (item, name, value) VALUES (?, ?, ?)",
                     [(item_id, k, v) for k, v in addons.items()])
    store.add_history(item_id, f"imported from upstream item {upstream_id} of module "
                               f"{module['name']} ({tariff['name']}, status {status}): nothing "
                               "was ordered", source="import", date=stamp, who=who)
    return {"item": item_id, "upstream_id": upstream_id, "pricelist": tariff["name"],
            "itemtype": tariff["itemtype"], "status": status,
            "expiredate": view.get("expiredate")}


def link(engine, item_id, upstream_id, who=None):
    """Link service ``item_id`` to upstream item ``upstream_id`` by hand: it must be of the
    service's tariff and held by no other service. A pending order of the service is taken as
    accepted by that item (checkevent completes it). Returns the service's row after."""
    store = engine.store
    item = store.item(item_id)
    if item["upstream_id"]:
        raise InputError(f"service {item['id']} is linked to upstream item "
                         f"{item['upstream_id']} already")
    if item["status"] == ItemStatus.DELETED:
        raise InputError(f"service {item['id']} is deleted")
    tariff = store.tariff(item["pricelist"])
    module = store.module(tariff["processingmodule"])
    upstream_id = str(upstream_id).strip()
    holder = store.one("SELECT id FROM item WHERE upstream_module = ? AND upstream_id = ?",
                       (module["id"], upstream_id))
    if holder is not None:
        raise InputError(f"upstream item {upstream_id} is service {holder['id']}'s already")
    try:
        view = engine.upstreams.client(module).edit_read(item["itemtype"], upstream_id)
    except UpstreamError as error:
        if error.kind == errors.PERMANENT:
            raise InputError(f"module {module['name']!r} has no {item['itemtype']} "
                             f"{upstream_id} upstream ({error.message})") from None
        raise
    if view.get("pricelist") != tariff["remote_id"]:
        raise InputError(f"upstream item {upstream_id} has tariff {view.get('pricelist')!r}; "
                         f"service {item['id']} is of {tariff['name']} ({tariff['remote_id']})")
    owner = _ordered_by(store, view)
    if owner is not None and owner["id"] != item["id"]:
        # Service N's order whose answer was lost: linked here, N's order would be sent again.
        raise InputError(f"upstream item {upstream_id} carries the remoteid of service "
                         f"{owner['id']}: that service's order made it")
    if view.get("status") == str(int(ItemStatus.DELETED)):
        # A link is not undone by hand: the service would be closed by the next checkevent.
        raise InputError(f"upstream item {upstream_id} is deleted")
    order = store.one("SELECT * FROM runningoperation WHERE item = ? AND operation = 'open' "
                      "AND status IN (?, ?) ORDER BY id DESC LIMIT 1",
                      (item["id"], OpStatus.NEW, OpStatus.FAILED))
    note = f"linked by hand to upstream item {upstream_id}"
    if order is None:
        with store.write():
            states.linked(store.conn, item["id"], module["id"], upstream_id, now())
            store.add_history(item["id"], note, who=who)
        return store.item(item["id"])
    claim = claim_operation(store.path, order["id"])
    if claim is None:
        raise errors.LockHeld(f"operation {order['id']} is being sent by another resellctl "
                              "process right now", "Try again in a moment.")
    try:
        outcome = outcomes.accepted(store, store.operation(order["id"]), module, upstream_id,
                                    note=note)
        if outcome.error is not None:
            raise outcome.error
    finally:
        os.close(claim)
    return store.item(item["id"])


def _ordered_by(store, view):
    """The service whose order made the upstream item ``view`` shows (it carries that service's
    remoteid), or None."""
    remoteid = view.get("remoteid")
    if not remoteid:
        return None
    return store.one("SELECT id, upstream_id FROM item WHERE remoteid = ?", (remoteid,))


def _linked(store, module):
    return {r[0] for r in store.all("SELECT upstream_id FROM item WHERE upstream_module = ? "
                                    "AND upstream_id IS NOT NULL", (module["id"],))}


def _typed(store, client, module, upstream_ids):
    """Each named upstream id with its item type, found in the lists (or, where the upstream
    lists nothing, by which type's form reads it); InputError for one already linked or not
    found."""
    ids = list(dict.fromkeys(str(i).strip() for i in upstream_ids))
    taken = store.all(f"SELECT id, upstream_id FROM item WHERE upstream_module = ? AND "
                      f"upstream_id IN ({','.join('?' * len(ids))})", (module["id"], *ids))
    if taken:
        raise InputError("; ".join(f"upstream item {r['upstream_id']} is service {r['id']}'s "
                                   "already" for r in taken))
    found = {}
    for itemtype in itemtypes(store, module["id"]):
        if client.keeps_in_step == "poll":
            for page in client.pages(itemtype):
                found.update((row["id"], itemtype) for row in page if row["id"] in ids)
            continue
        for upstream_id in ids:
            if upstream_id in found:
                continue
            try:
                client.edit_read(itemtype, upstream_id)
            except UpstreamError as error:
                if error.kind == errors.TRANSIENT:
                    raise
                continue
            found[upstream_id] = itemtype
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(f"module {module['name']!r} has no item {', '.join(missing)} upstream "
                         "of a type its tariffs sell")
    return [(found[i], i) for i in ids]

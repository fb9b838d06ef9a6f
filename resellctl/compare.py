"""What the upstream's view of one service changes in the books: the differences between a
service's form (``<itemtype>.edit``, as resellctl.upstream.normalise gives it) and the books,
as the Changes an event would carry, and the operations they complete. Polling
(resellctl.poll) finds the services to compare and applies what this finds.
"""

import json

from resellctl import kinds
from resellctl.changes import Change
from resellctl.states import ItemStatus, OpStatus


def changes(store, module, upstream_id, view, listed, row, pending, warn):
    """The changes that bring the service ``row`` (linked to ``upstream_id``) to the upstream's
    ``view`` (its form; ``listed``: the status its list row showed, for a form without one).
    ``pending``: the service's unfinished operations, {(item, kind): op}; ``warn(text)`` is
    told of what the books cannot take (a tariff not imported, or of another item type)."""
    module_id = module["id"]
    status = view.get("status") or listed
    addons = addons_of(store, module_id, view)
    params = {k: v for k, v in (view.get("params") or {}).items()}
    have = {r["name"]: r["value"] for r in store.all(
        "SELECT name, value FROM itemparam WHERE item = ?", (row["id"],))}
    new_params = {k: v for k, v in params.items()
                  if have.get(k) != v and (k in have or v != "")}
    have_addons = {r["name"]: r["value"] for r in store.all(
        "SELECT name, value FROM itemaddon WHERE item = ?", (row["id"],))}
    new_addons = {k: v for k, v in addons.items() if have_addons.get(k) != v}
    tariff = store.one("SELECT remote_id FROM pricelist WHERE id = ?", (row["pricelist"],))
    pricelist = view.get("pricelist")
    new_tariff = pricelist if pricelist and (tariff is None
                                             or tariff["remote_id"] != pricelist) else None
    known = new_tariff and store.one("SELECT itemtype FROM pricelist WHERE "
                                     "processingmodule = ? AND remote_id = ?",
                                     (module_id, new_tariff))
    if new_tariff and (known is None or known["itemtype"] != row["itemtype"]):
        # Applied, it would only say so in the history at every run until imported; one of
        # another item type would make a vds a hosting in the books.
        warn(
            f"service {row['id']}: its upstream item shows tariff {new_tariff}, " + (
                "which is not imported here; run: resellctl tariffs import "
                f"{module['name']}" if known is None else
                f"which sells {known['itemtype']}, not {row['itemtype']}: not applied"))
        new_tariff, new_addons = None, {}  # its resources are that tariff's
    expiry = view.get("expiredate")
    new_expiry = expiry if expiry and expiry != row["expiredate"] else None
    item, was = upstream_id, row["status"]
    changes = []

    def add(kind, **fields):
        changes.append(Change(kind, item, **fields))

    code = int(status) if status else None
    if code == ItemStatus.ACTIVE and was in (ItemStatus.ORDERED, ItemStatus.PROCESSING):
        add("open", status=code, expiredate=new_expiry, pricelist=new_tariff,
            params=new_params or None, addons=new_addons or None)
        new_expiry = new_tariff = None
        new_params = new_addons = {}
    elif code == ItemStatus.DELETED and was in (ItemStatus.ORDERED, ItemStatus.PROCESSING):
        add("openfail" if (row["id"], "open") in pending else "close",
            status=None if (row["id"], "open") in pending else code,
            msg="deleted upstream before it was ever active")
        return changes
    elif code == ItemStatus.SUSPENDED and was in (ItemStatus.ORDERED,
                                                  ItemStatus.PROCESSING):
        add("open", status=ItemStatus.ACTIVE, expiredate=new_expiry, pricelist=new_tariff,
            params=new_params or None, addons=new_addons or None)
        new_expiry = new_tariff = None
        new_params = new_addons = {}
        add("suspend", status=code)
    elif code == ItemStatus.SUSPENDED and was == ItemStatus.ACTIVE:
        add("suspend", status=code)
    elif code == ItemStatus.ACTIVE and was == ItemStatus.SUSPENDED:
        add("resume", status=code)
    elif code == ItemStatus.DELETED and was != ItemStatus.DELETED:
        add("close", status=code)
    if new_expiry:
        add("prolong", expiredate=new_expiry)
    if new_tariff:
        add("changepricelist", pricelist=new_tariff, addons=new_addons or None)
        new_addons = {}
    if new_params:
        add("setparam", params=new_params)
    if new_addons:
        add("addon", addons=new_addons)
    # An operation whose change the books show already (applied by an earlier run, or
    # found before the operation was accepted) is completed by what the upstream shows.
    made = {change.type for change in changes}
    for kind in kinds.KINDS.values():
        op = pending.get((row["id"], kind.name))
        if op is None or op["status"] != OpStatus.WAITING or kind.completed_by in made:
            continue
        request = _request(store, op["id"])
        if kind.shows({**view, "status": status}, request["params"], request["baseline"]):
            add(kind.completed_by)
    return changes


def _request(store, op_id):
    op = store.one("SELECT params, baseline FROM runningoperation WHERE id = ?",
                   (op_id,))
    return {"params": json.loads(op["params"] or "{}"), "baseline": op["baseline"]}


def addons_of(store, module_id, view):
    """The view's resources by name: as they are, or by the addon ids of its tariff."""
    if view.get("addons"):
        return dict(view["addons"])
    ids = view.get("addon_ids") or {}
    if not ids or not view.get("pricelist"):
        return {}
    names = {r["remote_id"]: r["intname"] for r in store.all(
        "SELECT pricelist_addon.remote_id, pricelist_addon.intname FROM pricelist_addon JOIN "
        "pricelist ON pricelist.id = pricelist_addon.pricelist WHERE "
        "pricelist.processingmodule = ? AND pricelist.remote_id = ?",
        (module_id, view["pricelist"]))}
    return {names[addon_id]: value for addon_id, value in ids.items() if addon_id in names}

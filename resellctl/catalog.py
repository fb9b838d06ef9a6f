"""The tariffs imported from the modules' upstreams."""

from resellctl.errors import PERMANENT, InputError, UpstreamError
from resellctl.store import now


def import_tariffs(store, upstreams, module_ref):
    """Fetch ``pricelist.export`` and upsert the tariffs; returns (added, updated, unchanged).

    All or nothing: a malformed tariff (one period priced twice, one resource listed twice, one
    id given to two tariffs) is the upstream's error, raised before anything is written.
    """
    module = store.module(module_ref)
    if module["type"] != "billmanager":
        raise InputError(f"module {module['name']!r} is a manual module: it has no upstream "
                         "to import tariffs from")
    tariffs = _checked(module, upstreams.client(module).pricelists())
    added = updated = unchanged = 0
    with store.write():
        for t in tariffs:
            row = store.one("SELECT * FROM pricelist WHERE processingmodule = ? AND "
                            "remote_id = ?", (module["id"], t["id"]))
            if row is None:
                tariff_id = store.conn.execute(
                    "INSERT INTO pricelist (processingmodule, remote_id, name, itemtype, "
                    "currency, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (module["id"], t["id"], t["name"], t["itemtype"], t["currency"],
                     now())).lastrowid
                added += 1
            elif _as_imported(store, row) == t:
                unchanged += 1
                continue
            else:
                tariff_id = row["id"]
                store.conn.execute("UPDATE pricelist SET name = ?, itemtype = ?, currency = ?, "
                                   "updated = ? WHERE id = ?",
                                   (t["name"], t["itemtype"], t["currency"], now(), tariff_id))
                updated += 1
            store.conn.execute("DELETE FROM pricelist_period WHERE pricelist = ?", (tariff_id,))
            store.conn.executemany(
                "INSERT INTO pricelist_period (pricelist, length, cost) VALUES (?, ?, ?)",
                [(tariff_id, length, cost) for length, cost in t["periods"].items()])
            store.conn.execute("DELETE FROM pricelist_addon WHERE pricelist = ?", (tariff_id,))
            store.conn.executemany(
                "INSERT INTO pricelist_addon (pricelist, intname, remote_id, value, measure) "
                "VALUES (?, ?, ?, ?, ?)",
                [(tariff_id, intname, *addon) for intname, addon in t["addons"].items()])
    return added, updated, unchanged


def _checked(module, pricelists):
    """The upstream's tariffs as the books keep them (periods ``{months: cost}``, addons
    ``{intname: (remote_id, value, measure)}``); UpstreamError naming the first malformed one."""
    tariffs, ids = [], set()
    for p in pricelists:
        if p["id"] in ids:
            raise _malformed(module, p, "another tariff has the same id")
        ids.add(p["id"])
        periods = {}
        for length, cost in p["periods"].items():
            if int(length) in periods:
                raise _malformed(module, p, f"period length {int(length)} is priced twice")
            periods[int(length)] = cost
        addons = {}
        for a in p["addons"]:
            if a["intname"] in addons:
                raise _malformed(module, p, f"the resource {a['intname']!r} is listed twice")
            addons[a["intname"]] = (a["id"], a["value"], a.get("measure"))
        tariffs.append({**p, "periods": periods, "addons": addons})
    return tariffs


def _malformed(module, tariff, problem):
    return UpstreamError(
        PERMANENT, f"module {module['name']!r}: the upstream sent a malformed tariff "
        f"{tariff['name']!r} (upstream id {tariff['id']}): {problem}", type="malformed_tariff",
        hint="Nothing was imported. Ask the upstream's provider to correct the tariff, then run "
             f"`resellctl tariffs import {module['name']}` again.")


def _as_imported(store, row):
    """A stored tariff in the shape ``_checked`` gives, to tell an unchanged one."""
    return {"id": row["remote_id"], "name": row["name"], "itemtype": row["itemtype"],
            "currency": row["currency"], "periods": store.tariff_periods(row["id"]),
            "addons": {intname: (a["remote_id"], a["value"], a["measure"])
                       for intname, a in store.tariff_addons(row["id"]).items()}}

"""Processing modules and the tariffs imported from their upstreams."""

import decimal
import re
import urllib.parse

from resellctl.errors import PERMANENT, InputError, UpstreamError
from resellctl.store import now

MODULE_TYPES = ("billmanager", "manual")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")


def add_module(store, name, type, url=None, username=None, password=None, datacenter=None,
               min_balance=None, auto_rerun=None, replace=False):
    """Add (or, with ``replace``, update) a processing module; True if it was added.

    With ``replace``, a setting given as None keeps the module's current value, so changing
    the minimal balance does not ask for the password again.
    """
    if not _NAME.match(name or ""):
        raise InputError(f"module name {name!r} must start with a letter and hold only "
                         "letters, digits, '.', '_' and '-' (at most 64)")
    current = store.one("SELECT * FROM processingmodule WHERE name = ?", (name,))
    if replace and current is not None and current["type"] == type:
        url, username, datacenter, min_balance = (
            current[k] if v is None else v for k, v in (
                ("url", url), ("username", username), ("datacenter", datacenter),
                ("min_balance", min_balance)))
        if password is None and type == "billmanager":
            password = store.password(current)
        if auto_rerun is None:
            auto_rerun = bool(current["auto_rerun"])
    if auto_rerun is None:
        auto_rerun = True
    if type not in MODULE_TYPES:
        raise InputError(f"module type must be one of {', '.join(MODULE_TYPES)}")
    if type == "billmanager":
        missing = [flag for flag, value in (("--url", url), ("--username", username),
                                            ("--password-file or --password-stdin", password))
                   if not value]
        if missing:
            raise InputError(f"a billmanager module needs {', '.join(missing)}")
        if ":" in username or _BLANK.search(username):
            # authinfo is USER:PASSWORD: a colon would move the split, a line end the line.
            raise InputError(f"--username must hold no ':', blank or control character, not "
                             f"{username!r}")
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not one
        except ValueError as e:
            # Not echoed: it may hold a password.
            raise InputError(f"--url is not a valid URL ({e})") from None
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InputError("--url must not hold credentials, a query or a fragment: "
                             "give the login with --username and --password-file")
        if parts.scheme not in ("http", "https") or not parts.hostname or _BLANK.search(url):
            raise InputError(f"--url must be an http(s) URL, not {url!r}")
    elif any((url, username, password, datacenter)):
        raise InputError("a manual module takes no --url, --username, password or --datacenter")
    if min_balance is not None:
        try:
            amount = decimal.Decimal(min_balance)
            if not amount.is_finite() or amount < 0:
                raise decimal.InvalidOperation
        except decimal.InvalidOperation:
            raise InputError(f"--min-balance must be an amount like 20 or 20.50, "
                             f"not {min_balance!r}") from None
    # The password goes to the secrets file, never into the books.
    row = {"name": name, "type": type, "url": url, "username": username,
           "datacenter": datacenter, "min_balance": min_balance,
           "auto_rerun": 1 if auto_rerun else 0}
    with store.write():
        existing = store.one("SELECT id, type FROM processingmodule WHERE name = ?", (name,))
        if existing is not None:
            if not replace:
                raise InputError(f"module {name!r} exists already",
                                 "Use --replace to change its settings.")
            if existing["type"] != type:
                raise InputError(f"module {name!r} is a {existing['type']} module; "
                                 "its type cannot change")
            store.conn.execute(
                "UPDATE processingmodule SET " + ", ".join(f"{k} = ?" for k in row) +
                " WHERE id = ?", (*row.values(), existing["id"]))
            store.set_password(existing["id"], password)
            return False
        row["cdate"] = now()
        module_id = store.conn.execute(
            f"INSERT INTO processingmodule ({', '.join(row)}) VALUES "
            f"({', '.join('?' * len(row))})", tuple(row.values())).lastrowid
        store.set_password(module_id, password)
        return True


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

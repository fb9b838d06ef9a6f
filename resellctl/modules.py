"""Processing modules: add, change, check and remove them.

A ``billmanager`` module is one upstream account: URL, username (its password lives apart from
the books: resellctl.store, ``password``), the dialect its upstream speaks (``api``: detected
once when the module is added, docs/protocol.md), a default datacenter and a minimal balance.
A ``manual`` module sends nothing anywhere: every operation becomes a task for staff.
"""

import decimal
import re
import urllib.parse

from resellctl import errors
from resellctl.errors import InputError, UpstreamError
from resellctl.states import PENDING, ItemStatus
from resellctl.store import now

MODULE_TYPES = ("billmanager", "manual")
APIS = ("auto", "events", "bm6", "bm5")
# What a module holds besides its name and type; None given: keep (or leave unset).
SETTINGS = ("url", "username", "datacenter", "min_balance", "auto_rerun", "api")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")


def add_module(store, name, type, password=None, replace=False, trace=None, **given):
    """Add a processing module (with ``replace``, change an existing one: what is not given is
    kept). ``given``: SETTINGS; ``api="auto"`` asks the upstream once which dialect it speaks.
    Returns (added: bool, the module's row)."""
    if not _NAME.match(name or ""):
        raise InputError(f"module name {name!r} must start with a letter and hold only "
                         "letters, digits, '.', '_' and '-' (at most 64)")
    current = store.one("SELECT * FROM processingmodule WHERE name = ?", (name,))
    if current is not None:
        if not replace:
            raise InputError(f"module {name!r} exists already",
                             f"Change its settings with: resellctl modules edit {name} ...")
        if type is not None and current["type"] != type:
            raise InputError(f"module {name!r} is a {current['type']} module; its type "
                             "cannot change")
        return False, edit_module(store, name, password=password, trace=trace, **given)
    if type not in MODULE_TYPES:
        raise InputError(f"a new module needs --type ({' or '.join(MODULE_TYPES)})")
    if type == "manual" and (password is not None or any(
            given.get(k) is not None for k in ("url", "username", "datacenter", "api"))):
        raise InputError("a manual module takes no --url, --username, password, --datacenter "
                         "or --api")
    settings = {k: given.get(k) for k in SETTINGS}
    if type == "billmanager":
        _check_upstream(settings["url"], settings["username"])
        if not password:
            raise InputError("a billmanager module needs --password-file or --password-stdin")
        settings["api"] = _dialect(name, settings, password, trace)
    settings["auto_rerun"] = 1 if settings["auto_rerun"] in (None, True) else 0
    _check_amount(settings["min_balance"])
    with store.write():
        if store.one("SELECT 1 FROM processingmodule WHERE name = ?", (name,)):
            raise InputError(f"module {name!r} exists already")
        # A removed module's id is never given again: its operations and its logged events
        # keep it, and a new module that took it would inherit them (and take its own events
        # for ones applied already).
        last = store.one("SELECT max(id) FROM (SELECT max(id) AS id FROM processingmodule "
                         "UNION ALL SELECT max(processingmodule) FROM runningoperation "
                         "UNION ALL SELECT max(processingmodule) FROM eventlog)")[0]
        row = {"id": (last or 0) + 1, "name": name, "type": type, **settings, "cdate": now()}
        module_id = store.conn.execute(
            f"INSERT INTO processingmodule ({', '.join(row)}) VALUES "
            f"({', '.join('?' * len(row))})", tuple(row.values())).lastrowid
        # The password goes to the secrets file, never into the books.
        if type == "billmanager":
            store.set_password(module_id, password)
    return True, store.module(module_id)


def edit_module(store, ref, password=None, trace=None, **given):
    """Change some settings of a module (SETTINGS, ``password``), keeping the rest; the
    module's row after. ``api="auto"`` detects the dialect anew."""
    current = store.module(ref)
    changes = {k: v for k, v in given.items() if k in SETTINGS and v is not None}
    if current["type"] == "manual":
        upstream_settings = ("url", "username", "datacenter", "api")
        if password is not None or any(k in changes for k in upstream_settings):
            raise InputError(f"module {current['name']!r} is a manual module: it has no "
                             "upstream, so no --url, --username, password, --datacenter or "
                             "--api")
    else:
        url = changes.get("url", current["url"])
        username = changes.get("username", current["username"])
        _check_upstream(url, username)
        if changes.get("api") == "auto":
            password = password if password is not None else store.password(current)
            changes["api"] = _dialect(current["name"], {**changes, "url": url,
                                                        "username": username}, password, trace)
    if "auto_rerun" in changes:
        changes["auto_rerun"] = 1 if changes["auto_rerun"] else 0
    _check_amount(changes.get("min_balance"))
    with store.write():
        if changes:
            store.conn.execute(
                "UPDATE processingmodule SET " + ", ".join(f"{k} = ?" for k in changes)
                + " WHERE id = ?", (*changes.values(), current["id"]))
        if password is not None:
            store.set_password(current["id"], password)
    return store.module(current["id"])


def users(store, module):
    """The services not closed that use ``module``: under it, linked through it upstream, or
    of one of its tariffs. Their ids."""
    return [r[0] for r in store.all(
        "SELECT id FROM item WHERE status != ? AND (processingmodule = ? OR upstream_module = ? "
        "OR pricelist IN (SELECT id FROM pricelist WHERE processingmodule = ?)) ORDER BY id",
        (ItemStatus.DELETED, module["id"], module["id"], module["id"]))]


def removable(store, module):
    """InputError, naming what stands in the way, unless ``module`` may be removed: no service
    that is not closed uses it, and none of its operations is still in progress."""
    busy = users(store, module)
    if busy:
        raise InputError(f"module {module['name']!r} is used by {len(busy)} service(s) that "
                         f"are not closed: {_listed(busy)}",
                         "Close them, or switch them to another module "
                         "(resellctl set-module ID MODULE), first.")
    # Even a closed service may have one: a change that waits for staff, a renewal that failed.
    pending = [r[0] for r in store.all(
        f"SELECT id FROM runningoperation WHERE status IN ({', '.join('?' * len(PENDING))}) "
        "AND processingmodule = ? ORDER BY id", (*PENDING, module["id"]))]
    if pending:
        raise InputError(f"module {module['name']!r} has {len(pending)} operation(s) not "
                         f"finished: {_listed(pending)}",
                         "Give each up first: resellctl ops cancel ID (with --force for one "
                         "that waits, which closes its task).")


def remove_module(store, ref, who=None):
    """Remove a module that removable() allows: its tariffs, its place in the feed, its
    password. Closed services keep their history, which says what they were.
    Returns the number of closed services that used it."""
    module = store.module(ref)
    removable(store, module)
    tariffs = "SELECT id FROM pricelist WHERE processingmodule = ?"
    with store.write():
        conn = store.conn
        closed = [r[0] for r in conn.execute(
            f"SELECT id FROM item WHERE processingmodule = ? OR upstream_module = ? OR "
            f"pricelist IN ({tariffs}) OR prev_module = ?",
            (module["id"], module["id"], module["id"], module["id"]))]
        for item_id in closed:
            store.add_history(item_id, f"module {module['name']} removed; the service was "
                                       "closed", source="module", who=who)
        conn.execute("UPDATE item SET processingmodule = NULL WHERE processingmodule = ?",
                     (module["id"],))
        conn.execute("UPDATE item SET upstream_module = NULL WHERE upstream_module = ?",
                     (module["id"],))
        conn.execute("UPDATE item SET prev_module = NULL WHERE prev_module = ?",
                     (module["id"],))
        conn.execute(f"UPDATE item SET pricelist = NULL WHERE pricelist IN ({tariffs})",
                     (module["id"],))
        for table in ("pricelist_period", "pricelist_addon"):
            conn.execute(f"DELETE FROM {table} WHERE pricelist IN ({tariffs})", (module["id"],))
        conn.execute("DELETE FROM pricelist WHERE processingmodule = ?", (module["id"],))
        conn.execute("DELETE FROM processingmodule WHERE id = ?", (module["id"],))
        if module["type"] == "billmanager":
            store.set_password(module["id"], None)
    return len(closed)


def _listed(ids):
    """``3, 7, 12`` (the first ten, then ``...``)."""
    return ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")


def check(store, upstreams, ref):
    """Log in, read the balance, tell the dialect, count the services upstream per item type
    and how many of them the books know: ``modules check``. Returns a dict; raises
    UpstreamError when the upstream refuses or cannot be reached."""
    from resellctl import upstream

    module = store.module(ref)
    if module["type"] != "billmanager":
        raise InputError(f"module {module['name']!r} is a manual module: it has no upstream "
                         "to check")
    client = upstreams.client(module)
    balance, currency = client.balance()
    report = {"module": module["name"], "url": module["url"], "username": module["username"],
              "api": module["api"], "balance": None if balance is None else str(balance),
              "currency": currency, "min_balance": module["min_balance"], "warnings": [],
              "services": []}
    if balance is None:
        report["warnings"].append(f"the balance could not be read ({currency})")
    elif module["min_balance"] and balance < decimal.Decimal(module["min_balance"]):
        report["warnings"].append(f"the balance is below the minimum {module['min_balance']}")
    seen = upstream.dialect_of(client.transport)  # over the session the balance opened
    if (seen == "events") != (module["api"] == "events"):
        report["warnings"].append(
            f"the upstream speaks {seen}, the module is set to {module['api']}: "
            f"resellctl modules edit {module['name']} --api {seen}")
    report["detected"] = seen
    if client.keeps_in_step == "poll":
        for itemtype in upstream.ITEMTYPES:
            ids = [row["id"] for page in client.pages(itemtype) for row in page]
            if not ids:
                continue
            known = sum(store.one("SELECT count(*) FROM item WHERE upstream_module = ? AND "
                                  f"upstream_id IN ({','.join('?' * len(chunk))})",
                                  (module["id"], *chunk))[0]
                        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)))
            report["services"].append({"itemtype": itemtype, "upstream": len(ids),
                                       "known": known})
    return report


def _dialect(name, settings, password, trace):
    """The dialect to store: as given, or detected (``auto`` or not given)."""
    from resellctl import upstream

    api = settings.get("api") or "auto"
    if api != "auto":
        return api
    try:
        return upstream.detect(settings["url"], settings["username"], password, name,
                               trace=trace)
    except UpstreamError as error:
        if error.kind != errors.TRANSIENT:
            raise
        raise UpstreamError(error.kind, error.message, maybe_sent=error.maybe_sent,
                            hint="The dialect is asked of the upstream when a module is added: "
                                 "try again once it answers, or give --api events|bm6|bm5.") \
            from None


def _check_upstream(url, username):
    missing = [flag for flag, value in (("--url", url), ("--username", username)) if not value]
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


def _check_amount(min_balance):
    if min_balance is None:
        return
    try:
        amount = decimal.Decimal(min_balance)
        if not amount.is_finite() or amount < 0:
            raise decimal.InvalidOperation
    except decimal.InvalidOperation:
        raise InputError(f"--min-balance must be an amount like 20 or 20.50, "
                         f"not {min_balance!r}") from None

"""The bm6 and bm5 dialects: the simulator answers as a real selling BILLmanager 6 or 5 answers
a customer-level account (docs/protocol.md).

Against the events dialect: a login opens a session; there is no event feed, no
``subaccount`` and no ``remoteid`` de-duplication; bm6 orders most item types through
``v2.<itemtype>.order.param`` with ``order_period``; a service is read back through its type's
list (display values, paged) and its ``.edit`` form (fields as direct children of ``doc``);
the balance comes formatted from ``dashboard.info``. The quirks of real upstreams
(dialects.QUIRKS) are applied here, and only here.
"""

from functools import partial

from resellctl.bmdoc import scalar
from resellctl.sim import api
from resellctl.sim.api import _number, _required
from resellctl.sim.errors import ApiError, bad_value, missed
from resellctl.sim.tariffs import ITEMTYPES

# Item types a bm6 still orders through <itemtype>.order.param; it orders the others only
# through v2.<itemtype>.order.param. A bm5 has no v2 forms at all.
OLD_ORDER_TYPES = {"domain", "certificate"}
# Functions that exist, but for the upstream's administrators only.
ADMIN_FUNCTIONS = {"subaccount"}
STATUS_NAMES = {1: "Ordered", 2: "Active", 3: "Suspended", 4: "Deleted", 5: "Processing"}
# The leading columns of each type's list, read from the item's parameters.
LEADING_COLUMNS = {"vds": ("domain", "ip", "ostempl"), "dedic": ("domain", "ip", "ostempl"),
                   "vhost": ("domain", "ip"), "soft": ("ip",), "domain": ("domain",),
                   "certificate": ("domain",)}
DEFAULT_PAGE = 100  # rows of a list page when p_cnt is not sent
DAILY = "Daily charges"
NBSP = "\u00a0"


def call(sim, form):
    """The doc answering one API request; raises ApiError for an error answer."""
    with sim.lock:
        if form.get("out") != "json":
            raise bad_value("out", "This API answers out=json only")
        func = form.get("func")
        if func == "auth":
            return _login(sim, form)
        account = _account(sim, form)
        if not func:
            raise missed("func")
        return _function(sim.api, func)(sim, account, form)


def _bad_password():
    return ApiError("auth", "badpassword", "Invalid username or password")


def _login(sim, form):
    account = sim.authenticate(form.get("username", ""), form.get("password", ""))
    if account is None:
        raise _bad_password()
    session = sim.sessions.open(account.username)
    return {"auth": {"$id": session, "$": session, "$level": "16"}}


def _account(sim, form):
    """The account a request is made for: by its session, else by its ``authinfo``."""
    session = form.get("auth")
    if session:
        username = sim.sessions.user(session)
        if username is None:
            raise ApiError("auth", "", "The session has ended or is unknown; log in again")
        return sim.accounts[username]
    username, _, password = form.get("authinfo", "").partition(":")
    account = sim.authenticate(username, password)
    if account is None:
        raise _bad_password()
    return account


def _denied(func):
    return ApiError("access", func, f"Access to '{func}' is denied")


def _function(dialect, func):
    if func in FUNCTIONS:
        return FUNCTIONS[func]
    if func in ITEMTYPES:
        return partial(item_list, itemtype=func)
    v2 = func.startswith("v2.")
    itemtype, _, action = func.removeprefix("v2.").partition(".")
    if itemtype in ITEMTYPES:
        if action == "order.param" and v2 == (dialect == "bm6"
                                              and itemtype not in OLD_ORDER_TYPES):
            return partial(api.order_param, itemtype=itemtype,
                           period_field="order_period" if v2 else "period")
        if action in ITEM_FUNCTIONS and not v2:
            return partial(ITEM_FUNCTIONS[action], itemtype=itemtype)
    if func in ADMIN_FUNCTIONS:
        raise _denied(func)
    raise ApiError("missing", "func", f"Unknown function '{func}'")


# --- shapes ----------------------------------------------------------------------------------

def format_amount(sim, amount):
    """An amount as the panel shows it: ``1 234.50 EUR`` (``comma-balance``: ``1 234,50 EUR``
    with a non-breaking space)."""
    thousands, point = (NBSP, ",") if "comma-balance" in sim.quirks else (" ", ".")
    digits = f"{amount:,.2f}".translate(str.maketrans({",": thousands, ".": point}))
    return f"{digits} {sim.currency}"


def _rows(sim, rows):
    return rows[0] if len(rows) == 1 and "single-row-object" in sim.quirks else rows


def _expiry(sim, item):
    expiredate = item.expiredate or ""  # none yet while the item is being opened
    if "daily-charges" in sim.quirks:
        return {"expiredate": scalar(DAILY), "real_expiredate": scalar(expiredate)}
    return {"expiredate": scalar(expiredate)}


def _row(sim, item):
    tariff = sim.tariffs[item.pricelist]
    cost = tariff.prices.get(item.period)
    status = "item_real_status" if "item-real-status" in sim.quirks else "item_status"
    row = {"id": scalar(item.id), "pricelist": scalar(tariff.name), **_expiry(sim, item),
           "autoprolong": scalar("off"), "createdate": scalar(item.createdate),
           "status_msg": scalar(""),
           "cost": scalar("" if cost is None else format_amount(sim, cost)),
           status: {"$orig": str(item.status), "$": STATUS_NAMES[item.status]}}
    row.update((column, scalar(item.params.get(column, "")))
               for column in LEADING_COLUMNS[item.itemtype])
    return row


def _form(sim, item, func):
    """The ``.edit`` form of ``item``: parameters, resources and its own fields as direct
    children of doc, beside attributes and form metadata that are none of them."""
    tariff = sim.tariffs[item.pricelist]
    doc = {"$lang": "en", "$func": func}
    doc.update((name, scalar(value)) for name, value in item.params.items())
    doc.update((f"addon_{addon.id}", scalar(item.addons.get(addon.intname, addon.value)))
               for addon in tariff.addons)
    doc.update(elid=scalar(item.id), id=scalar(item.id), pricelist=scalar(item.pricelist),
               status=scalar(item.status), period=scalar(item.period),
               createdate=scalar(item.createdate), datacenter=scalar(item.datacenter or ""),
               autoprolong=scalar("off"), **_expiry(sim, item))
    if "edit-no-remoteid" not in sim.quirks:
        doc["remoteid"] = scalar(item.remoteid)
    doc["tparams"] = {"elid": scalar(item.id), "func": scalar(func), "out": scalar("json")}
    doc["slist"] = [
        {"$name": "autoprolong", "val": [{"$key": "off", "$": "Off"}, {"$key": "on", "$": "On"}]},
        {"$name": "period", "val": [{"$key": str(months), "$": f"{months} months"}
                                    for months in tariff.prices]},
    ]
    return doc


# --- functions -------------------------------------------------------------------------------

def item_list(sim, account, form, itemtype):
    """``func=<itemtype>``: the account's services of that type, deleted ones included, a page
    of ``p_cnt`` rows at a time (``p_num`` from 1); opens the ordered items that are due."""
    if itemtype not in {tariff.itemtype for tariff in sim.tariffs.values()}:
        raise _denied(itemtype)
    sim.open_pending(due_only=True)
    items = [item for item in sim.items.values()
             if item.account == account.username and item.itemtype == itemtype]
    doc = {"$lang": "en", "$func": itemtype}
    if "no-paging" not in sim.quirks:
        size = _number(form, "p_cnt", default=DEFAULT_PAGE, low=1)
        page = _number(form, "p_num", default=1, low=1)
        doc.update(p_cnt=scalar(size), p_num=scalar(page), p_elems=scalar(len(items)))
        items = items[(page - 1) * size:page * size]
    if items:  # an empty list has no elem at all
        doc["elem"] = _rows(sim, [_row(sim, item) for item in items])
    return doc


def item_edit(sim, account, form, itemtype):
    """With ``sok``, set parameters as the events dialect does; without, read the service's
    form, opening the ordered items that are due first."""
    if form.get("sok"):
        return api.item_edit(sim, account, form, itemtype)
    sim.open_pending(due_only=True)
    elid = _required(form, "elid")
    try:
        item = sim.item(elid, account, itemtype)
    except ApiError:
        kind = "missing" if "edit-missing" in sim.quirks else "missed"
        raise ApiError(kind, "elid", f"No service with id '{elid}'") from None
    return _form(sim, item, form["func"])


def dashboard_info(sim, account, form):
    """The account's dashboard: its balance, formatted, with the currency."""
    return {"elem": _rows(sim, [{"balance": scalar(format_amount(sim, account.balance))}])}


FUNCTIONS = {
    "pricelist.export": api.pricelist_export,
    "service.prolong": api.service_prolong,
    "service.changepricelist": api.service_changepricelist,
    "dashboard.info": dashboard_info,
}
# <itemtype>.<action>; order.param is chosen by dialect in _function
ITEM_FUNCTIONS = {
    **{action: api.ITEM_FUNCTIONS[action] for action in ("suspend", "resume", "delete")},
    "edit": item_edit,
}

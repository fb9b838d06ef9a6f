"""The API functions of the events dialect (docs/protocol.md): one request's form fields in,
the JSON answer out. The bm dialects (bm.py) build on them."""

import json
from functools import partial

from resellctl.bmdoc import scalar
from resellctl.sim.errors import ApiError, bad_value, missed
from resellctl.sim.tariffs import ITEMTYPES

OK = {"ok": {}}
# Form fields that steer a call rather than describe the service.
CONTROL_FIELDS = {"func", "out", "authinfo", "auth", "sok", "skipbasket", "clicked_button",
                  "lang", "elid"}
ORDER_FIELDS = CONTROL_FIELDS | {"pricelist", "period", "remoteid", "datacenter"}
MAX_EVENTS_PER_PAGE = 1000


def answer(sim, form, call=None):
    """The JSON text answering one API request (an error answer included).

    ``call`` answers it in another dialect than events: ``call(sim, form)`` returns the doc.
    """
    try:
        doc = (call or _call)(sim, form)
    except ApiError as error:
        doc = error.as_doc()
    return doc if isinstance(doc, str) else json.dumps({"doc": doc})


def _call(sim, form):
    username, _, password = form.get("authinfo", "").partition(":")
    account = sim.authenticate(username, password)
    if account is None:
        raise ApiError("auth", "", "Invalid username or password")
    if form.get("out") != "json":
        raise bad_value("out", "This API answers out=json only")
    func = form.get("func")
    if not func:
        raise missed("func")
    with sim.lock:
        return _function(func)(sim, account, form)


def _function(func):
    if func in FUNCTIONS:
        return FUNCTIONS[func]
    itemtype, _, action = func.partition(".")
    if itemtype in ITEMTYPES and action in ITEM_FUNCTIONS:
        return partial(ITEM_FUNCTIONS[action], itemtype=itemtype)
    raise ApiError("missing", "func", f"Unknown function '{func}'")


def _required(form, name):
    value = form.get(name, "").strip()
    if not value:
        raise missed(name)
    return value


def _whole(name, value):
    try:
        return int(value)
    except ValueError:
        raise bad_value(name, f"'{value}' is not a whole number") from None


def _number(form, name, default=None, low=None, high=None):
    """An integer field; ``missed`` if absent and no default, ``value`` if out of range."""
    if not form.get(name, "").strip() and default is not None:
        return default
    number = _whole(name, _required(form, name))
    if low is not None and number < low:
        raise bad_value(name, f"{name} must be at least {low}")
    if high is not None and number > high:
        raise bad_value(name, f"{name} must be at most {high}")
    return number


def pricelist_export(sim, account, form):
    itemtype = form.get("itemtype")
    return {"pricelist": [tariff.as_doc(sim.currency) for tariff in sim.tariffs.values()
                          if not itemtype or tariff.itemtype == itemtype]}


def order_param(sim, account, form, itemtype, period_field="period"):
    """Order a service; ``period_field`` is the field the dialect's order form names the
    period with (bm6's v2 forms: ``order_period``)."""
    tariff = sim.tariff(_required(form, "pricelist"), itemtype)
    remoteid = _required(form, "remoteid")
    period = _number(form, period_field)
    addons, params = {}, {}
    for key, value in form.items():
        if key.startswith("addon_"):
            addons[key[len("addon_"):]] = _whole(key, value)
        elif key not in ORDER_FIELDS and key != period_field:
            params[key] = value
    try:
        item = sim.order(account, tariff, period, remoteid, params, addons,
                         form.get("datacenter") or None)
    except ApiError as error:
        if error.object == "period":  # a period the tariff does not sell: name the form's field
            error.object = period_field
        raise
    return {"id": scalar(item.id)}


def service_prolong(sim, account, form):
    item = sim.item(_required(form, "elid"), account)
    return {"newexpiredate": scalar(sim.prolong(item.id, _number(form, "period")))}


def service_changepricelist(sim, account, form):
    item = sim.item(_required(form, "elid"), account)
    sim.changepricelist(item.id, _required(form, "pricelist"))
    return OK


def item_status(sim, account, form, itemtype, action):
    """``<itemtype>.suspend``, ``.resume``, ``.delete``: ``action`` names the Simulator method."""
    getattr(sim, action)(sim.item(_required(form, "elid"), account, itemtype).id)
    return OK


def item_edit(sim, account, form, itemtype):
    """Without ``sok``, read the item; with it, set the given fields as its parameters."""
    item = sim.item(_required(form, "elid"), account, itemtype)
    if not form.get("sok"):
        return item.as_doc()
    params = {key: value for key, value in form.items() if key not in CONTROL_FIELDS}
    if params:
        sim.setparam(item.id, **params)
    return OK


def subaccount(sim, account, form):
    number = list(sim.accounts).index(account.username) + 1
    return {"elem": [{"id": scalar(number), "balance": scalar(account.balance),
                      "currency": scalar(sim.currency)}]}


def event_list(sim, account, form):
    """A page of the account's events; opens the ordered items that are due first."""
    sim.open_pending(due_only=True)
    after = _number(form, "after", default=0, low=0)
    limit = _number(form, "limit", default=100, low=1, high=MAX_EVENTS_PER_PAGE)
    lines, more = account.events.page(after, limit)
    # The events are JSON already: join them rather than decode and encode them again.
    return ('{"doc": {"more": {"$": "%s"}, "elem": [%s]}}'
            % ("on" if more else "off", ", ".join(lines)))


def event_ack(sim, account, form):
    account.events.ack(_number(form, "upto"))
    return OK


FUNCTIONS = {
    "pricelist.export": pricelist_export,
    "service.prolong": service_prolong,
    "service.changepricelist": service_changepricelist,
    "subaccount": subaccount,
    "item.event.list": event_list,
    "item.event.ack": event_ack,
}
# <itemtype>.<action>
ITEM_FUNCTIONS = {
    "order.param": order_param,
    "suspend": partial(item_status, action="suspend"),
    "resume": partial(item_status, action="resume"),
    "delete": partial(item_status, action="delete"),
    "edit": item_edit,
}

"""The functions resellctl calls upstream (docs/protocol.md, "Functions"): those every dialect
shares, and the ``events`` dialect's own.

A client knows the calls and the shapes of their answers; how a call travels (credentials,
sessions, deadlines, retries, caps) is its transport's (transport.py). ``deadline`` (a
``time.monotonic()`` value) bounds a call and its retries. A change is sent once (``retry``
False): only the engine sends it again, after reading what the upstream shows
(operations.py); a read or an order (de-duplicated, or looked for first) may be retried.
"""

import re
from decimal import Decimal

from resellctl import bmdoc, errors
from resellctl.errors import UpstreamError
from resellctl.upstream import EDIT_FIELDS, ORDER_FIELDS, check_params, normalise


class Client:
    """The calls every dialect has, over ``transport``."""

    dialect = None
    keeps_in_step = None  # "feed": an event feed; "poll": listing and comparing
    dedups_orders = False  # a second order with one remoteid is refused with ``exists``

    def __init__(self, transport):
        self.transport = transport

    def __repr__(self):
        return f"{type(self).__name__}({self.transport!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the keep-alive connections."""
        self.transport.close()

    def recording(self):
        """Within this block calls send nothing; the list yielded gets the forms they would
        POST, credentials masked (``ops start --dry-run``)."""
        return self.transport.recording()

    def call(self, func, params=None, retry=True, deadline=None):
        """Call any function; the ``doc`` of its answer (Transport.call)."""
        return self.transport.call(func, params, retry=retry, deadline=deadline)

    def _call(self, func, params=None, retry=True, parse=None, deadline=None):
        return self.transport.call(func, params, retry=retry, parse=parse, deadline=deadline)

    def _read(self, itemtype, elid, retry, parse, deadline):
        """Item ``elid``'s ``<itemtype>.edit`` form, made a view by ``parse``. A form of
        another item is refused (UpstreamError ``wrong_item``): taken for this one, it would
        give one service another's status, or link one customer's server to another."""
        func = f"{itemtype}.edit"
        view = self._call(func, {"elid": elid}, retry, parse, deadline)
        if str(view["id"]).strip() != str(elid).strip():
            shown = self.transport.answers.safe(str(view["id"]), 40)
            raise UpstreamError(errors.PERMANENT, f"{func} on {self.transport.host}: asked for "
                                f"item {elid}, the upstream answered with item {shown}",
                                type="wrong_item", object="elid")
        return view

    def pricelists(self, itemtype=None, deadline=None):
        """The tariffs the account may order, as plain dicts."""
        return self._call("pricelist.export", {"itemtype": itemtype}, True,
                          lambda doc: [_pricelist(p) for p in bmdoc.as_list(doc.get("pricelist"))],
                          deadline)

    def _order(self, func, period_field, itemtype, pricelist, period, remoteid, datacenter,
               addons, params, retry, deadline):
        fields = {"pricelist": pricelist, period_field: period, "remoteid": remoteid,
                  "datacenter": datacenter, "sok": "ok", "skipbasket": "on",
                  "clicked_button": "finish"}
        fields.update({f"addon_{k}": v for k, v in (addons or {}).items()})
        check_params(params, (*ORDER_FIELDS, *fields))
        fields.update(params or {})
        return self._call(func, fields, retry, _required("id"), deadline)

    def prolong(self, elid, period, retry=False, deadline=None):
        """Extend an item by ``period`` months; return its new expiry date."""
        return self._call("service.prolong", {"elid": elid, "period": period, "sok": "ok"},
                          retry, _required("newexpiredate"), deadline)

    def suspend(self, itemtype, elid, retry=False, deadline=None):
        """Suspend an item; the change itself is seen later."""
        self._call(f"{itemtype}.suspend", {"elid": elid}, retry, deadline=deadline)

    def resume(self, itemtype, elid, retry=False, deadline=None):
        """Resume a suspended item; the change itself is seen later."""
        self._call(f"{itemtype}.resume", {"elid": elid}, retry, deadline=deadline)

    def delete(self, itemtype, elid, retry=False, deadline=None):
        """Delete an item; the change itself is seen later."""
        self._call(f"{itemtype}.delete", {"elid": elid}, retry, deadline=deadline)

    def changepricelist(self, elid, pricelist, retry=False, deadline=None):
        """Move an item to another upstream tariff."""
        self._call("service.changepricelist", {"elid": elid, "pricelist": pricelist,
                                               "sok": "ok"}, retry, deadline=deadline)

    def edit_write(self, itemtype, elid, params, retry=False, deadline=None):
        """Set an item's parameters (``{name: value}``)."""
        check_params(params, EDIT_FIELDS)
        self._call(f"{itemtype}.edit", {**params, "elid": elid, "sok": "ok"}, retry,
                   deadline=deadline)


class EventsClient(Client):
    """An upstream of the ``events`` dialect: the item event feed, ``subaccount`` for the
    balance, and orders de-duplicated by remoteid."""

    dialect = "events"
    keeps_in_step = "feed"
    dedups_orders = True

    def order(self, itemtype, pricelist, period, remoteid, datacenter=None, addons=None,
              params=None, retry=True, deadline=None):
        """Order a service; return the upstream item id.

        ``addons`` is ``{addon_id: value}``; ``params`` are plain service fields. Re-sending is
        safe: a used ``remoteid`` answers UpstreamError(EXISTS) whose ``params["id"]`` is the
        existing item, which the caller adopts once it checked it.
        """
        return self._order(f"{itemtype}.order.param", "period", itemtype, pricelist, period,
                           remoteid, datacenter, addons, params, retry, deadline)

    def edit_read(self, itemtype, elid, retry=True, deadline=None):
        """An item as the upstream sees it: id, remoteid, status, expiredate, pricelist,
        params and addons (both ``{name: value}``)."""
        def parse(doc):
            item = {k: bmdoc.text(doc.get(k))
                    for k in ("id", "remoteid", "status", "expiredate", "pricelist")}
            if item["id"] is None:
                raise ValueError("no id")
            # Read as the bm dialects read theirs: a status is a code, an expiry a date.
            for name, read in (("status", normalise.status), ("expiredate", normalise.expiry)):
                if item[name] and read(doc) != item[name]:
                    raise ValueError(f"{name} {item[name][:40]!r}")
            item["params"] = bmdoc.named_values(doc.get("param"))
            item["addons"] = bmdoc.named_values(doc.get("addon"))
            return item
        return self._read(itemtype, elid, retry, parse, deadline)

    def balance(self, deadline=None):
        """The selling account's balance as ``(Decimal, currency)``."""
        def parse(doc):
            elems = bmdoc.as_list(doc.get("elem"))
            if not elems or not isinstance(elems[0], dict):
                raise ValueError("no account")
            balance = Decimal(bmdoc.text(elems[0]["balance"]))
            if not balance.is_finite():
                raise ValueError(f"balance {balance}")
            return balance, bmdoc.text(elems[0]["currency"])
        return self._call("subaccount", None, True, parse, deadline)

    def events(self, after, limit=1000, deadline=None):
        """The events after event id ``after``, oldest first, and whether more wait.

        The events are the raw ``elem`` objects: the caller parses each one itself, so that a
        malformed event is recorded and passed rather than failing the page.
        """
        def parse(doc):
            elems = bmdoc.as_list(doc.get("elem"))
            more = bmdoc.text(doc.get("more"), "off") == "on"
            if more and not elems:
                raise ValueError("more events announced, none sent")
            return elems, more
        return self._call("item.event.list", {"after": after, "limit": limit}, True, parse,
                          deadline)

    def ack(self, upto, deadline=None):
        """Let the upstream discard the events up to ``upto`` (an applied event id)."""
        self._call("item.event.ack", {"upto": upto}, True, deadline=deadline)


def _required(name):
    """A parser returning the scalar ``doc[name]``, which must be there."""
    def parse(doc):
        value = bmdoc.text(doc.get(name))
        if not value:
            raise ValueError(f"no {name}")
        return value
    return parse


def _pricelist(node):
    price = node.get("price") or {}
    if not isinstance(price, dict):
        raise ValueError("price is not an object")
    return {
        "id": bmdoc.text(node["id"]),
        "name": bmdoc.text(node.get("name"), ""),
        "itemtype": bmdoc.text(node.get("itemtype"), ""),
        "currency": bmdoc.text(price.get("$currency"), ""),
        "periods": {_months(bmdoc.text(p["$length"])): bmdoc.text(p["$cost"])
                    for p in bmdoc.as_list(price.get("period"))},
        "addons": [{key: bmdoc.text(a.get(key), "")
                    for key in ("id", "intname", "value", "measure")}
                   for a in bmdoc.as_list(node.get("addon"))],
    }


def _months(length):
    """A period's ``$length``, which the books keep as an integer: months, or BM's codes
    (``-100`` trial, ``-50`` day, ``0`` lifetime)."""
    if not re.fullmatch(r"-?[0-9]{1,6}", length or ""):
        raise ValueError(f"period length {length!r}")
    return length

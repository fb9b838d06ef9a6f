"""The answers of real BILLmanagers, brought to one shape in one place.

Real upstreams differ in small ways the documented shapes do not show (docs/protocol.md,
"Quirks"): a list of one row comes as an object, a status comes localised with its code in
``$orig`` (or as ``item_real_status``), a service billed daily shows a phrase where its expiry
should be and the date in ``real_expiredate``, a list names a tariff where a form numbers it,
and a balance is a formatted amount with its currency. Everything that reads those answers goes
through the functions here, so that a quirk seen on a new upstream is one edit.

Every function raises ValueError for an answer it cannot read; the client turns that into a
malformed-answer failure of the call.
"""

import datetime
import functools
import re
from decimal import Decimal, InvalidOperation

from resellctl import bmdoc

# The fields of ``<itemtype>.edit`` that are the service's own, not its parameters.
OWN_FIELDS = frozenset({
    "elid", "id", "pricelist", "expiredate", "real_expiredate", "status", "item_status",
    "item_real_status", "remoteid", "period", "autoprolong", "createdate", "datacenter",
    "processingmodule", "func", "sok", "out", "auth", "clicked_button", "skipbasket",
    "order_period", "cost", "status_msg", "name",
})
# List columns that describe the row rather than the service's parameters.
LIST_FIELDS = frozenset({
    "id", "pricelist", "expiredate", "real_expiredate", "autoprolong", "createdate",
    "status_msg", "item_status", "item_real_status", "status", "cost", "remoteid", "period",
    "datacenter", "processingmodule", "name",
})
# Form fields that hold a secret (a server's root password, say): never a parameter the books
# keep, show or put in a backup.
_SECRET = re.compile(r"passw|secret|token|private_key", re.I)
STATUS_CODES = ("1", "2", "3", "4", "5")
_ADDON = re.compile(r"addon_([0-9]+)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def rows(node):
    """The rows of a list answer (``doc.elem``): absent is none, an object is one row."""
    return [row for row in bmdoc.as_list(node) if _is_row(row)]


def _is_row(row):
    if not isinstance(row, dict):
        raise ValueError(f"a list row must be an object, not {type(row).__name__}")
    return True


def _scalar(node):
    """A scalar field, or None when it is absent or not a scalar (form metadata)."""
    # Nearly every field is {"$": "text"}: read at once, as a list of 100,000 rows has a
    # million of them.
    value = node.get("$") if type(node) is dict else node
    if type(value) is str:
        return value
    try:
        return bmdoc.text(node)
    except ValueError:
        return None


def status(fields):
    """A service's status code (``"2"``) from its fields, or None when they do not say.

    ``item_status`` (its code in ``$orig``, the text beside it localised), else
    ``item_real_status``, else ``status``; only a code counts, never a localised word.
    """
    for name in ("item_status", "item_real_status", "status"):
        node = fields.get(name)
        if node is None:
            continue
        code = node.get("$orig") if isinstance(node, dict) and "$orig" in node else node
        code = _scalar(code)
        if code is not None and code.strip() in STATUS_CODES:
            return code.strip()
    return None


def expiry(fields):
    """A service's expiry date (``YYYY-MM-DD``), or None: ``expiredate`` when it is a date,
    else ``real_expiredate`` (a service billed daily shows a phrase in ``expiredate``)."""
    for name in ("expiredate", "real_expiredate"):
        value = _scalar(fields.get(name))
        date = None if value is None else _date(value)
        if date is not None:
            return date
    return None


@functools.lru_cache(maxsize=1024)
def _date(text):
    """The date ``text`` begins with, as ``YYYY-MM-DD``, or None; a list's thousand rows share
    a few dates, so each is read once."""
    match = _DATE.match(text.strip())
    if match:
        try:
            return datetime.date.fromisoformat(match.group()).isoformat()
        except ValueError:
            pass
    return None


def list_row(row):
    """One row of ``func=<itemtype>`` as ``{"id", "status", "expiredate", "pricelist",
    "createdate", "columns"}``: ``pricelist`` as the list shows it (an id or a name),
    ``columns`` the row's other scalar columns (``ip``, ``domain``, ...)."""
    ident = _scalar(row.get("id"))
    if not ident or not ident.strip():
        raise ValueError("a list row without an id")
    columns = {}
    for name, node in row.items():
        if _is_column(name):
            value = _scalar(node)
            if value is not None:
                columns[name] = value
    return {"id": ident.strip(), "status": status(row), "expiredate": expiry(row),
            "pricelist": _scalar(row.get("pricelist")),
            "createdate": _scalar(row.get("createdate")), "columns": columns}


@functools.lru_cache(maxsize=256)
def _is_column(name):
    """Whether a list row's field ``name`` is one of the service's columns (``ip``), not one
    that describes the row or holds a secret; every row has the same names, so each is
    answered once."""
    return not (name in LIST_FIELDS or name.startswith("$") or _SECRET.search(name))


MAX_FORM_FIELDS = 10_000


def edit_form(doc):
    """The answer of ``<itemtype>.edit`` (a form) as the view every dialect gives:
    ``{"id", "remoteid", "status", "expiredate", "pricelist", "params", "addon_ids"}``.

    Scalar fields that are not the service's own are its parameters; ``addon_<id>`` fields
    are its resources by the tariff's addon id; objects and arrays (form metadata, select
    lists) are passed over.
    """
    if not isinstance(doc, dict):
        raise ValueError("the form is not an object")
    ident = _scalar(doc.get("elid")) or _scalar(doc.get("id"))
    if not ident:
        raise ValueError("the form names no service (no elid)")
    if len(doc) > MAX_FORM_FIELDS:
        # A service has tens of them: a form of millions, read 200 at a time, would hold
        # gigabytes of memory.
        raise ValueError(f"the form has {len(doc):,} fields, more than {MAX_FORM_FIELDS:,}")
    params, addons = {}, {}
    for name, node in doc.items():
        if name in OWN_FIELDS or name.startswith("$") or _SECRET.search(name):
            continue
        value = _scalar(node)
        if value is None:
            continue
        match = _ADDON.fullmatch(name)
        if match:
            addons[match.group(1)] = value
        else:
            params[name] = value
    period = _scalar(doc.get("period"))
    return {"id": ident, "remoteid": _scalar(doc.get("remoteid")), "status": status(doc),
            "expiredate": expiry(doc), "pricelist": _scalar(doc.get("pricelist")),
            "period": int(period) if period and re.fullmatch(r"-?[0-9]{1,6}", period) else None,
            "params": params, "addon_ids": addons}


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_AMOUNT = re.compile(r"([+-]?[0-9][0-9\s\u00a0\u202f\u2009',.]*)\s*(.*)", re.S)


def balance(node):
    """``dashboard.info``'s balance as ``(Decimal, currency)``: ``"1 234.50 RUB"``,
    ``"95,00 EUR"``, thousands separated by spaces or non-breaking spaces."""
    text = _scalar(node)
    if text is None:
        raise ValueError("no balance")
    match = _AMOUNT.fullmatch(text.strip())
    if not match:
        raise ValueError(f"balance {text!r} is not an amount")
    number, currency = _SPACES.sub("", match.group(1)), match.group(2).strip()
    if "," in number and "." in number:
        raise ValueError(f"balance {text!r}: cannot tell the decimal separator")
    if number.count(",") > 1 or number.count(".") > 1:
        raise ValueError(f"balance {text!r} is not an amount")
    try:
        amount = Decimal(number.replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"balance {text!r} is not an amount") from None
    if not amount.is_finite() or len(currency) > 16:
        raise ValueError(f"balance {text!r} is not an amount")
    return amount, currency

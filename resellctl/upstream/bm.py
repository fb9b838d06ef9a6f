"""The ``bm6`` and ``bm5`` dialects: a real selling BILLmanager, through its documented API
(docs/protocol.md, "Real BILLmanagers").

No event feed, no ``subaccount``, no de-duplication of orders: services are kept in step by
listing them (``func=<itemtype>``, paged) and reading their forms (``<itemtype>.edit``), the
balance comes formatted from ``dashboard.info``, and BILLmanager 6 orders most item types
through ``v2.<itemtype>.order.param`` with ``order_period``. The transport opens a session
(one login a run). Every answer is read through upstream/normalise.py, the one place for the
quirks of real upstreams.
"""

import datetime

from resellctl import errors
from resellctl.errors import UpstreamError
from resellctl.upstream import normalise
from resellctl.upstream.calls import Client

# Item types that BILLmanager 6 still orders through <itemtype>.order.param [inferred].
OLD_ORDER_TYPES = {"domain", "certificate"}
# Error types that answer a read of an item that is not there: ``missed`` of ``elid`` on a
# form read, or ``missing`` [inferred].
GONE = {"missed", "missing"}
MAX_LISTED = 1_000_000  # services of one type a list may show before it is taken as endless
MAX_CANDIDATES = 500  # items read, at most, to find an order whose answer was lost


class BmClient(Client):
    """An upstream of the ``bm6`` or ``bm5`` dialect."""

    keeps_in_step = "poll"
    dedups_orders = False

    def __init__(self, transport, dialect):
        super().__init__(transport)
        self.dialect = dialect

    def order(self, itemtype, pricelist, period, remoteid, datacenter=None, addons=None,
              params=None, retry=True, deadline=None):
        """Order a service; return the upstream item id. Nothing upstream refuses a second
        order with the same remoteid: the caller never sends one blindly (find_order)."""
        v2 = self.dialect == "bm6" and itemtype not in OLD_ORDER_TYPES
        func = f"v2.{itemtype}.order.param" if v2 else f"{itemtype}.order.param"
        return self._order(func, "order_period" if v2 else "period", itemtype, pricelist,
                           period, remoteid, datacenter, addons, params, retry, deadline)

    def edit_read(self, itemtype, elid, retry=True, deadline=None):
        """An item as its form shows it (normalise.edit_form). An item that is not there is
        an UpstreamError of type ``missing``, never taken for a bug of ours."""
        try:
            return self._read(itemtype, elid, retry, normalise.edit_form, deadline)
        except UpstreamError as error:
            if error.type not in GONE or error.object not in ("elid", ""):
                raise
        raise UpstreamError(errors.PERMANENT, f"{itemtype}.edit on {self.transport.host}: "
                                              f"upstream item {elid} does not exist",
                            type="missing", object="elid")

    def balance(self, deadline=None):
        """The balance as ``(Decimal, currency)``; ``(None, what it said)`` when the formatted
        amount cannot be read: an unknown balance is a warning, never a failed run."""
        def parse(doc):
            rows = normalise.rows(doc.get("elem"))
            if not rows:
                return None, "no balance on the dashboard"
            try:
                return normalise.balance(rows[0].get("balance"))
            except ValueError as error:
                return None, str(error)
        return self._call("dashboard.info", None, True, parse, deadline)

    def find_order(self, itemtype, remoteid, tariff, since, linked, deadline=None):
        """The items that may be an order whose answer was lost: of ``itemtype``, of the tariff
        (``tariff``: its upstream id and name, as a list may show either), made after ``since``
        (an aware datetime), not among the ``linked`` upstream ids. Returns
        ``(carrying remoteid, showing no remoteid)``: their ids. Nothing here promises that a
        second order with one remoteid is refused [inferred], so this is how an order is kept
        from being made twice (docs/protocol.md, "Ordering"). Its calls are tried once each:
        the search runs inside the retries of the order it looks for."""
        rows = [row["id"] for page in self.pages(itemtype, deadline=deadline, retry=False)
                for row in page
                if row["id"] not in linked and row["pricelist"] in tariff
                and created_since(row["createdate"], since)]
        if len(rows) > MAX_CANDIDATES:
            # Each would be read: too many to tell which is the order, if any.
            return [], rows
        carrying, unknown = [], []
        for upstream_id in rows:
            shown = self.edit_read(itemtype, upstream_id, retry=False,
                                   deadline=deadline)["remoteid"]
            if shown == remoteid:
                carrying.append(upstream_id)
            elif shown is None:
                unknown.append(upstream_id)
        return carrying, unknown

    def pages(self, itemtype, size=1000, deadline=None, retry=True):
        """The account's services of ``itemtype``, a page (a list of normalise.list_row) at a
        time, each id once. An upstream that ignores paging (a page longer than asked, or the
        same rows again) is read once, never looped over. A type the account cannot list has
        none. ``retry``: False where the caller retries around the whole walk."""
        number, before, read = 1, set(), 0
        while True:
            if read >= MAX_LISTED:
                # No reseller's account holds as many: an upstream that pages for ever.
                raise UpstreamError(errors.PERMANENT, f"{itemtype} on {self.transport.host}: "
                                    f"the list goes on past {MAX_LISTED:,} services; it was "
                                    "not read further", type="endless_list")
            try:
                rows = self._call(itemtype, {"p_cnt": size, "p_num": number}, retry,
                                  _list_page, deadline)
            except UpstreamError as error:
                if error.kind == errors.TRANSIENT or number > 1:
                    raise
                return
            ids = {row["id"] for row in rows}
            if ids <= before:
                return
            # A row twice, or again from the page before (an item made or deleted between the
            # two moved the list), is one service: taken twice, it was two candidates for an
            # order, or ended the walk early.
            yield list({row["id"]: row for row in rows if row["id"] not in before}.values())
            if len(rows) != size:
                return
            number, before, read = number + 1, ids, read + len(rows)


def _list_page(doc):
    return [normalise.list_row(row) for row in normalise.rows(doc.get("elem"))]


# How far a service's creation date may lag our own clock when it is compared with when an
# order was sent: the upstream writes its local time with no zone, which may be any zone
# [inferred: no documented field gives it].
CLOCK_MARGIN = datetime.timedelta(hours=14, minutes=10)


def created_since(createdate, since):
    """Whether an item created at ``createdate`` (the upstream's ``YYYY-MM-DD HH:MM:SS``) may
    have been made after ``since`` (an aware datetime); True when the date cannot be read."""
    try:
        created = datetime.datetime.fromisoformat((createdate or "").strip().replace(" ", "T"))
    except ValueError:
        return True
    return created.replace(tzinfo=None) >= (since - CLOCK_MARGIN).replace(tzinfo=None)

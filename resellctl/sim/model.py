"""The simulator's data: accounts, items, amounts of money and the item status codes."""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from resellctl.bmdoc import named, scalar
from resellctl.sim.events import EventLog, now_text

CENT = Decimal("0.01")

ORDERED, ACTIVE, SUSPENDED, DELETED, PROCESSING = 1, 2, 3, 4, 5


def money(value):
    """A Decimal amount of money from a string, int or Decimal; ValueError if it is none."""
    try:
        amount = Decimal(str(value).strip())
        if not amount.is_finite():
            raise InvalidOperation
        # Past the context's precision (28 digits) quantize fails too.
        return amount.quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {value!r}") from None


@dataclass
class Account:
    """A selling account: credentials, balance, its event log and the remoteids it used."""

    username: str
    password: str = field(repr=False)
    balance: Decimal
    events: EventLog = field(default_factory=EventLog, repr=False)
    remoteids: dict = field(default_factory=dict, repr=False)  # remoteid -> item id


@dataclass
class Item:
    """A service as the selling side sees it."""

    id: str
    account: str
    remoteid: str
    itemtype: str
    pricelist: str
    status: int
    expiredate: str | None
    period: int
    params: dict
    addons: dict
    datacenter: str | None = None
    createdate: str = field(default_factory=now_text)  # date and time, as the bm dialects show it

    def as_doc(self):
        """The item as ``<itemtype>.edit`` reads it."""
        doc = {"id": scalar(self.id), "remoteid": scalar(self.remoteid),
               "status": scalar(self.status), "pricelist": scalar(self.pricelist),
               "param": named(self.params), "addon": named(self.addons)}
        if self.expiredate:
            doc["expiredate"] = scalar(self.expiredate)
        return doc

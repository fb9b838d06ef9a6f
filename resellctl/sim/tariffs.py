"""The simulator's tariffs (``pricelist.export``) and the calendar arithmetic of periods."""

import calendar
from dataclasses import dataclass
from decimal import Decimal

from resellctl.bmdoc import scalar

ITEMTYPES = ("vds", "vhost", "dedic", "soft", "certificate", "domain")


@dataclass(frozen=True)
class Addon:
    """A resource of a tariff: ``disk`` 30 GB."""

    id: str
    intname: str
    value: int
    measure: str


@dataclass(frozen=True)
class Tariff:
    """A pricelist: prices per period (months -> cost) and the resources it includes."""

    id: str
    name: str
    itemtype: str
    prices: dict
    addons: tuple

    def addon_values(self):
        """The included resources as ``{"disk": "30", ...}``."""
        return {addon.intname: str(addon.value) for addon in self.addons}

    def addon(self, addon_id):
        """The addon with this id, or None."""
        return next((addon for addon in self.addons if addon.id == addon_id), None)

    def as_doc(self, currency):
        """The tariff as ``pricelist.export`` shows it."""
        return {
            "id": scalar(self.id),
            "name": scalar(self.name),
            "itemtype": scalar(self.itemtype),
            "price": {"$currency": currency,
                      "period": [{"$length": str(months), "$cost": str(cost)}
                                 for months, cost in self.prices.items()]},
            "addon": [{"id": scalar(a.id), "intname": scalar(a.intname),
                       "value": scalar(a.value), "measure": scalar(a.measure)}
                      for a in self.addons],
        }


def _tariff(id, name, itemtype, prices, *addons):
    return Tariff(str(id), name, itemtype,
                  {months: Decimal(cost) for months, cost in prices.items()},
                  tuple(Addon(str(addon_id), intname, value, measure)
                        for addon_id, intname, value, measure in addons))


def default_tariffs():
    """The tariffs a new simulator sells, by id."""
    tariffs = [
        _tariff(11, "VDS-1", "vds", {1: "5.00", 3: "14.00", 12: "50.00"},
                (101, "disk", 30, "GB"), (102, "ram", 1024, "MB")),
        _tariff(12, "VDS-2", "vds", {1: "9.00", 12: "90.00"},
                (103, "disk", 60, "GB"), (104, "ram", 2048, "MB")),
        # VDS-1 with more memory and the same disk: the tariff a vds may change to upstream.
        _tariff(13, "VDS-1-RAM", "vds", {1: "7.00", 12: "70.00"},
                (105, "disk", 30, "GB"), (106, "ram", 2048, "MB")),
        _tariff(21, "Hosting-Start", "vhost", {1: "2.00", 12: "20.00"},
                (107, "quota", 5000, "MB"), (108, "domains", 3, "unit")),
    ]
    return {tariff.id: tariff for tariff in tariffs}


def add_months(day, months):
    """``day`` plus ``months`` calendar months, the day clamped to the month's length."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))

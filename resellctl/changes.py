"""A change of one upstream service: what the books apply, whoever found it.

The event feed reads changes from the upstream's log; polling finds them by comparing the
upstream's lists with the books; a closed manual task makes one in the books. All three are
applied by one applier (resellctl.applier), so a change means the same wherever it came from.
"""

import dataclasses

from resellctl.states import ItemStatus


@dataclasses.dataclass(slots=True)
class Change:
    """One change of one service, in the upstream's terms: ``pricelist`` is the upstream's
    tariff id, ``item`` the upstream item id (empty for a service that has none)."""

    type: str
    item: str
    remoteid: str | None = None
    date: str | None = None
    status: int | None = None
    expiredate: str | None = None
    pricelist: str | None = None
    params: dict | None = None
    addons: dict | None = None
    msg: str | None = None
    id: int | None = None  # the upstream's event id, for a change read from the feed


# change type -> the service status it sets when it carries none, and the field it cannot
# do without.
TYPES = {
    "open": (ItemStatus.ACTIVE, None),
    "openfail": (None, None),
    "suspend": (ItemStatus.SUSPENDED, None),
    "resume": (ItemStatus.ACTIVE, None),
    "close": (ItemStatus.DELETED, None),
    "prolong": (None, "expiredate"),
    "setparam": (None, "params"),
    "addon": (None, "addons"),
    "changepricelist": (None, "pricelist"),
}


def described(item_id, change):
    """A change as ``checkevent --dry-run`` shows it: the service it would apply to (None: no
    service in the books has that upstream item), and the fields it carries."""
    fields = {name: getattr(change, name) for name in Change.__slots__
              if name not in ("type", "item", "id") and getattr(change, name) is not None}
    event = {"event": change.id} if change.id is not None else {}
    return {"item": item_id, "upstream_item": change.item, "type": change.type, **event,
            **fields}

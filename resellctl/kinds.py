"""What each kind of running operation is, in one record per kind.

A kind says everything the rest of the tool needs to know of it: its task type and wording,
in which service statuses it may be asked for and what its request holds, the upstream call
that sends it, how to tell from the upstream's view of a service that it happened already,
the change a manual module makes in the books when staff close its task, and which upstream
change completes it. The engine, the lifecycle commands and the change applier ask this
registry; none of them lists kinds of its own. Adding a kind is one record here, one client
call, one command and the simulator (docs/architecture.md).
"""

import dataclasses
import datetime
from typing import Callable

from resellctl.changes import Change
from resellctl.errors import InputError
from resellctl.printable import one_line
from resellctl.states import ItemStatus, item_label


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of running operation."""

    name: str
    task_type: str
    verb: str  # "prolong", "change the tariff of": service 17
    asked_in: tuple  # the service statuses it may be asked in
    send: Callable  # (client, item, request, retry) -> upstream item id or None
    shows: Callable  # (view, request, baseline) -> is the change there already?
    shown: Callable  # (view) -> what of the view shows it, for the history
    local: Callable | None  # (store, item, request) -> the Change a closed manual task makes
    completed_by: str  # the upstream change that completes it
    failed_by: str | None = None  # the upstream change that fails it
    prepare: Callable | None = None  # (store, item, tariff, module, args) -> (request, detail)
    needs_baseline: bool = False  # relative: compared with the upstream before it was sent

    def describe(self, item_id, detail=""):
        """``Prolong service 17 (3 months)``."""
        return (f"{self.verb[0].upper()}{self.verb[1:]} service {item_id}"
                + (f" ({detail})" if detail else ""))

    def refusal(self, item):
        """Why this kind may not be asked for ``item`` now, or None."""
        status = item["status"]
        if status in self.asked_in:
            return None
        if status == ItemStatus.DELETED:
            return f"service {item['id']} is deleted"
        if status in (ItemStatus.ORDERED, ItemStatus.PROCESSING):
            return (f"service {item['id']} is {item_label(status)}: wait until it is open "
                    "(`resellctl checkevent`)")
        wanted = " or ".join(item_label(s) for s in self.asked_in)
        return (f"service {item['id']} is {item_label(status)}, not {wanted}: nothing to "
                f"{self.verb}")


# --- checks of a request, before anything is written -----------------------------------------

def check_period(store, tariff, period):
    """The period to use (the shortest one sold, when None); InputError if not sold."""
    periods = store.tariff_periods(tariff["id"])
    if not periods:
        raise InputError(f"tariff {tariff['name']!r} has no prices",
                         "Re-import it with `resellctl tariffs import MODULE`.")
    if period is None:
        positive = [p for p in periods if p > 0]
        return min(positive) if positive else min(periods)
    if period not in periods:
        sold = ", ".join(str(p) for p in periods)
        raise InputError(f"tariff {tariff['name']!r} is not sold for {period} months "
                         f"(periods: {sold})")
    return period


def check_params(params, kind):
    """InputError, before anything is written, for a parameter that the request of ``kind``
    sets itself (the client would refuse to send it, and the operation would stay unsendable),
    or that names a resource (``addon_<id>``): the upstream would provision it while the books
    kept the tariff's value, so resources are set through --addon only, which checks them."""
    from resellctl import upstream

    fields = upstream.ORDER_FIELDS if kind == "open" else upstream.EDIT_FIELDS
    upstream.check_params(params, fields)
    resource = next((name for name in params if name.lower().startswith("addon_")), None)
    if resource is not None:
        how = ("e.g. `resellctl order VDS-1 --addon disk=40`; a tariff's resources are in "
               "`resellctl tariffs list`" if kind == "open" else
               "when the service is ordered; later they change with its tariff "
               "(`resellctl services change-tariff`)")
        raise InputError(f"parameter {resource!r} names a resource, which no parameter may set",
                         f"Set resources with --addon NAME=VALUE, {how}.")


def check_tariff_change(store, item, old, new, module):
    """A tariff change the upstream can make; a vds whose disk would change needs a manual
    module, and the refusal says how."""
    if new["id"] == old["id"]:
        raise InputError(f"service {item['id']} already has tariff {new['name']!r}")
    if new["itemtype"] != item["itemtype"]:
        raise InputError(f"tariff {new['name']!r} is for {new['itemtype']}, "
                         f"service {item['id']} is a {item['itemtype']}")
    if new["processingmodule"] != old["processingmodule"]:
        # Under a manual module too: the service still lives with its tariff's upstream.
        home = store.module(old["processingmodule"])
        raise InputError(f"tariff {new['name']!r} is not sold by module {home['name']!r}, "
                         f"which sells service {item['id']}")
    if item["itemtype"] != "vds" or module["type"] != "billmanager":
        return
    # The service's own disk: it may have been ordered larger than its tariff's.
    old_disk = store.one("SELECT value FROM itemaddon WHERE item = ? AND name = 'disk'",
                         (item["id"],)) or store.tariff_addons(old["id"]).get("disk")
    new_disk = store.tariff_addons(new["id"]).get("disk")
    old_value = old_disk["value"] if old_disk else None
    new_value = new_disk["value"] if new_disk else None
    if old_value != new_value:
        manual = store.one("SELECT name FROM processingmodule WHERE type = 'manual' "
                           "ORDER BY id LIMIT 1")
        manual_name = manual["name"] if manual else "manual"
        add = "" if manual else ("  0. resellctl modules add manual --type manual\n")
        raise InputError(
            f"changing service {item['id']} from {old['name']} ({old_value} GB disk) to "
            f"{new['name']} ({new_value} GB disk) changes the disk size, which the upstream "
            f"cannot do automatically for a virtual server",
            "Do it by hand under a manual processing module:\n"
            f"{add}"
            f"  1. resellctl set-module {item['id']} {manual_name} --until-task-closed\n"
            f"  2. resellctl services change-tariff {item['id']} {one_line(new['name'])}\n"
            f"  3. resize the server, then: resellctl tasks close TASK --note 'disk resized'\n"
            f"  4. (without --until-task-closed) resellctl set-module {item['id']} "
            f"{module['name']}")


def months(count):
    """``1 month``, ``12 months``."""
    return f"{count} month{'' if int(count) == 1 else 's'}"


def add_months(date_text, count):
    """``YYYY-MM-DD`` plus whole months, the day clamped to the month's end."""
    date = datetime.date.fromisoformat(date_text) if date_text else datetime.date.today()
    month = date.month - 1 + int(count)
    year, month = date.year + month // 12, month % 12 + 1
    for day in (date.day, 30, 29, 28):
        try:
            return datetime.date(year, month, day).isoformat()
        except ValueError:
            continue
    raise AssertionError("unreachable")


# --- the kinds -------------------------------------------------------------------------------

def _status_is(status):
    return lambda view, request, baseline: view.get("status") == str(int(status))


def _status_shown(view):
    return f"status {view.get('status')}"


def _local(item, kind, **fields):
    """The change a closed manual task makes to ``item``, in the terms of an upstream one."""
    return Change(kind, item["upstream_id"] or "", **fields)


def _status_change(kind, status):
    return lambda store, item, request: _local(item, kind, status=status)


def _prepare_prolong(store, item, tariff, module, args):
    period = args.get("period")
    period = check_period(store, tariff, item["period"] if period is None else period)
    return {"period": period}, months(period)


def _prepare_tariff(store, item, tariff, module, args):
    new = store.tariff(args["tariff"])
    check_tariff_change(store, item, tariff, new, module)
    return ({"pricelist": new["id"], "pricelist_remote_id": new["remote_id"]},
            one_line(f"{tariff['name']} -> {new['name']}"))


def _prepare_params(store, item, tariff, module, args):
    params = dict(args["params"])
    check_params(params, "setparam")
    return {"params": params}, ", ".join(f"{k}={v}" for k, v in params.items())


def _local_tariff(store, item, request):
    addons = {a["intname"]: a["value"]
              for a in store.tariff_addons(request["pricelist"]).values()}
    return _local(item, "changepricelist", pricelist=request["pricelist_remote_id"],
                  addons=addons)


def _params_shown(view, request, baseline):
    have = view.get("params") or {}
    return all(have.get(k) == str(v) for k, v in request["params"].items())


LIVE = (ItemStatus.ACTIVE, ItemStatus.SUSPENDED)

KINDS = {kind.name: kind for kind in (
    Kind("open", "postopen", "open", asked_in=(),
         send=lambda client, item, request, retry: client.order(
             item["itemtype"], request["pricelist_remote_id"], request["period"],
             item["remoteid"],
             datacenter=request.get("datacenter"), addons=request.get("addons"),
             params=request.get("params"), retry=retry),
         shows=_status_is(ItemStatus.ACTIVE), shown=_status_shown,
         # An order goes to its tariff's upstream, whatever module the service is under later.
         local=None, completed_by="open", failed_by="openfail"),
    Kind("prolong", "postprolong", "prolong", asked_in=LIVE,
         send=lambda client, item, request, retry: client.prolong(
             item["upstream_id"], request["period"], retry=retry),
         shows=lambda view, request, baseline: (
             baseline is not None and (view.get("expiredate") or "") > baseline),
         shown=lambda view: f"expiry {view.get('expiredate')}",
         local=lambda store, item, request: _local(
             item, "prolong", expiredate=add_months(item["expiredate"], request["period"])),
         completed_by="prolong", prepare=_prepare_prolong, needs_baseline=True),
    Kind("suspend", "postsuspend", "suspend", asked_in=(ItemStatus.ACTIVE,),
         send=lambda client, item, request, retry: client.suspend(
             item["itemtype"], item["upstream_id"], retry=retry),
         shows=_status_is(ItemStatus.SUSPENDED), shown=_status_shown,
         local=_status_change("suspend", ItemStatus.SUSPENDED), completed_by="suspend"),
    Kind("resume", "postresume", "resume", asked_in=(ItemStatus.SUSPENDED,),
         send=lambda client, item, request, retry: client.resume(
             item["itemtype"], item["upstream_id"], retry=retry),
         shows=_status_is(ItemStatus.ACTIVE), shown=_status_shown,
         local=_status_change("resume", ItemStatus.ACTIVE), completed_by="resume"),
    Kind("close", "postclose", "close",
         asked_in=(ItemStatus.ORDERED, ItemStatus.ACTIVE, ItemStatus.SUSPENDED,
                   ItemStatus.PROCESSING),
         send=lambda client, item, request, retry: client.delete(
             item["itemtype"], item["upstream_id"], retry=retry),
         shows=_status_is(ItemStatus.DELETED), shown=_status_shown,
         local=_status_change("close", ItemStatus.DELETED), completed_by="close"),
    Kind("changepricelist", "postchangepricelist", "change the tariff of", asked_in=LIVE,
         send=lambda client, item, request, retry: client.changepricelist(
             item["upstream_id"], request["pricelist_remote_id"], retry=retry),
         shows=lambda view, request, baseline: (
             view.get("pricelist") == str(request["pricelist_remote_id"])),
         shown=lambda view: f"tariff {view.get('pricelist')}",
         local=_local_tariff, completed_by="changepricelist", prepare=_prepare_tariff),
    Kind("setparam", "postsetparam", "set parameters of", asked_in=LIVE,
         send=lambda client, item, request, retry: client.edit_write(
             item["itemtype"], item["upstream_id"], request["params"], retry=retry),
         shows=_params_shown, shown=lambda view: "the new parameters",
         local=lambda store, item, request: _local(item, "setparam",
                                                   params=dict(request["params"])),
         completed_by="setparam", prepare=_prepare_params),
)}

NAMES = tuple(KINDS)


def kind(name):
    """The kind named ``name``; KeyError for one this version does not know."""
    return KINDS[name]


# change type -> (the kind it completes, whether as done), asked for every change applied; a
# type that completes no kind is not in it.
COMPLETES = {**{k.failed_by: (k.name, False) for k in KINDS.values() if k.failed_by},
             **{k.completed_by: (k.name, True) for k in KINDS.values()}}

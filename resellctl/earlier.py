"""What an earlier attempt made upstream: telling, before anything is sent again, whether an
operation whose answer was lost went through.

An order of the ``events`` dialect is de-duplicated upstream by its remoteid; the item an
``exists`` names is adopted only once read back and found to be this order's. An order of a
dialect that promises no de-duplication is looked for among the items made since it was sent.
A prolongation, being relative, can only be told done against the expiry read before it was
first sent. (docs/protocol.md, "An order whose answer was lost".)
"""

import datetime

from resellctl import errors, states
from resellctl.errors import UpstreamError


def existing_order(store, client, item, upstream_id):
    """The note to adopt upstream item ``upstream_id``, which the upstream says ``item``'s
    order made already (``exists``); UpstreamError when it cannot be read (transient) or is not
    what the order ordered (permanent: nothing is linked).

    The upstream knows the order only by its remoteid. A store restored from a backup or
    copied elsewhere could otherwise take a service of another store (or of another customer
    of this one) for its own, and a later close would delete it.
    """
    tariff = store.tariff(item["pricelist"])
    try:
        seen = client.edit_read(item["itemtype"], upstream_id)
    except UpstreamError as error:
        if error.kind == errors.TRANSIENT:
            raise
        seen = None
    mismatch = _mismatch(item, tariff, seen)
    if mismatch:
        raise UpstreamError(
            errors.PERMANENT,
            f"the upstream answered that it has this order already, as item {upstream_id}, "
            f"but {mismatch}; nothing was linked",
            type="exists_mismatch",
            hint=f"Another order may have used remoteid {item['remoteid']} (a store restored "
                 "from a backup, or a copy of it, ordering through the same account). Look "
                 f"at item {upstream_id} upstream before anything else.")
    return (f"adopted the existing upstream item {upstream_id} (the upstream already had "
            "this order)")


def find_order(store, client, op, item, request, deadline):
    """An order that may have been made already: the item carrying its remoteid, else the
    one item of its tariff made after it was sent that no service is linked to.
    (note, upstream id) to adopt it; None when there is none (it is sent); UpstreamError
    naming the candidates when several could be it."""
    current = store.operation(op["id"])  # sent by this very processing, perhaps
    sent = current["sentdate"] or current["cdate"]
    since = datetime.datetime.fromisoformat(sent.replace("Z", "+00:00"))
    tariff = store.tariff(request["pricelist"])
    linked = {r[0] for r in store.all(
        "SELECT upstream_id FROM item WHERE upstream_module = ?", (op["processingmodule"],))}
    carrying, unknown = client.find_order(
        item["itemtype"], item["remoteid"], (tariff["remote_id"], tariff["name"]), since,
        linked, deadline)
    if len(carrying) == 1:
        return (f"adopted upstream item {carrying[0]}, which carries this order's remoteid "
                "(an earlier attempt made it; its answer was lost)"), carrying[0]
    if not carrying and len(unknown) == 1:
        return (f"adopted upstream item {unknown[0]}: the one item of tariff "
                f"{tariff['name']} made since this order was sent that no service is "
                "linked to (the upstream shows no remoteid)"), unknown[0]
    if not carrying and not unknown:
        return None
    candidates = carrying or unknown
    candidates = ", ".join(candidates[:10]) + (
        f" and {len(candidates) - 10} more" if len(candidates) > 10 else "")
    raise UpstreamError(
        errors.PERMANENT,
        f"the order of service {item['id']} may have been made upstream already (its "
        f"answer was lost), and several upstream items could be it: {candidates}; nothing "
        "was sent again", type="ambiguous_order",
        hint=f"Look at them upstream, then link the right one by hand: resellctl services "
             f"link {item['id']} UPSTREAM_ID")


def unknown_baseline(op):
    return UpstreamError(
        errors.PERMANENT,
        f"operation {op['id']} may have reached the upstream, and its expiry before that was "
        "never read, so whether the service was prolonged cannot be told",
        type="unknown_baseline",
        hint="Compare the service's expiry upstream with `resellctl services show "
             f"{op['item']}`: if it was not prolonged, give this operation up "
             f"(`resellctl ops cancel {op['id']}`) and prolong the service anew.")


def _mismatch(item, tariff, seen):
    """Why the upstream item ``seen`` (``edit_read``; None: it could not be read) is not the
    one ``item``'s order made, or "" when it is."""
    if seen is None:
        return f"it is not a {item['itemtype']} this account can read"
    if seen.get("remoteid") not in (None, item["remoteid"]):
        return f"it carries remoteid {seen['remoteid']!r}"
    if seen.get("pricelist") != tariff["remote_id"]:
        return (f"it has tariff {seen.get('pricelist')!r} upstream, not {tariff['name']} "
                f"({tariff['remote_id']})")
    if seen.get("status") == str(int(states.ItemStatus.DELETED)):
        return "it is deleted upstream"
    return ""

"""The dialects the simulator speaks, and the quirks of real upstreams it can show.

``events`` is the protocol's own upstream (an item event feed, ``subaccount``, ``remoteid``
de-duplication); ``bm6`` and ``bm5`` act as a real selling BILLmanager 6 or 5 answers a
customer-level account. docs/protocol.md describes each.
"""

DIALECTS = ("events", "bm6", "bm5")

# name -> what a bm6 or bm5 simulator does differently with it on
QUIRKS = {
    "single-row-object": "a list of one row is sent as that row, not as an array of one",
    "item-real-status": "list rows carry item_real_status in place of item_status",
    "daily-charges": "expiredate says 'Daily charges'; the date is in real_expiredate",
    "no-paging": "lists ignore p_cnt and p_num and send every row at once",
    "comma-balance": "amounts as '1\u00a0234,50 EUR': non-breaking spaces, a decimal comma",
    "edit-no-remoteid": "<itemtype>.edit leaves out the remoteid field",
    "edit-missing": "<itemtype>.edit of an unknown elid answers missing, not missed",
}


def check_dialect(api, quirks):
    """``api`` and ``quirks`` (a frozenset), checked; ValueError names what is wrong."""
    if api not in DIALECTS:
        raise ValueError(f"unknown dialect {api!r}; one of: {', '.join(DIALECTS)}")
    quirks = frozenset(quirks)
    unknown = sorted(quirks - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirk {unknown[0]!r}; one of: {', '.join(QUIRKS)}")
    if quirks and api == "events":
        raise ValueError("quirks are those of real upstreams: they need the bm6 or bm5 dialect")
    return api, quirks

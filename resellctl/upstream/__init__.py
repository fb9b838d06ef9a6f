"""The upstream selling BILLmanagers: one client per processing module, in its dialect.

An upstream speaks one of three dialects (docs/protocol.md): ``events`` (resellctl's own item
event feed), ``bm6`` and ``bm5`` (real BILLmanagers, kept in step by polling). Each module's
client is the dialect's (calls.EventsClient or bm.BmClient) over a transport of its own
(transport.Transport: sessions, deadlines, size caps, retries, redaction). The rest of the tool
asks a client what its way of keeping in step is (``keeps_in_step``: ``feed`` or ``poll``) and
whether its upstream de-duplicates orders (``dedups_orders``); nothing else needs to know the
dialect.

This module imports nothing heavy: requests is loaded only when a client is made.
"""

DIALECTS = ("events", "bm6", "bm5")
ITEMTYPES = ("vds", "vhost", "dedic", "soft", "certificate", "domain")
# Fields that a call sets itself; a caller's params may not replace them.
_RESERVED = {"func", "out", "authinfo", "auth"}
# Fields an order and a parameter change set themselves: no service parameter may be one.
ORDER_FIELDS = ("pricelist", "period", "order_period", "remoteid", "datacenter", "sok",
                "skipbasket", "clicked_button")
EDIT_FIELDS = ("elid", "sok")


def check_params(params, fields=()):
    """InputError naming the first of ``params`` that the protocol or the call sets itself."""
    from resellctl.errors import InputError

    clash = _RESERVED.union(fields).intersection(params or {})
    if clash:
        raise InputError(f"parameter {sorted(clash)[0]!r} is reserved for the protocol and "
                         "cannot be set on a service")


def connect(url, username, password, api, module=""):
    """The client of an upstream account speaking dialect ``api``."""
    from resellctl.upstream.bm import BmClient
    from resellctl.upstream.calls import EventsClient
    from resellctl.upstream.transport import Transport

    if api == "events":
        return EventsClient(Transport(url, username, password, module=module))
    if api in ("bm6", "bm5"):
        return BmClient(Transport(url, username, password, module=module, login=True), api)
    raise ValueError(f"unknown dialect {api!r}")


def detect(url, username, password, module="", deadline=None, trace=None):
    """The dialect the upstream at ``url`` speaks: asked once, with the event feed's first page
    (docs/protocol.md, "Telling the dialects apart"). An ``auth`` error is the credentials'
    failure (UpstreamError); an unreachable upstream, a transient one. ``bm5`` cannot be told
    from ``bm6`` without ordering: an administrator sets it."""
    from resellctl.upstream.transport import Transport

    transport = Transport(url, username, password, module=module)
    transport.trace = trace
    try:
        return dialect_of(transport, deadline)
    finally:
        transport.close()


def dialect_of(transport, deadline=None):
    """``detect`` over a transport already made: a module's own, whose session (in the ``bm``
    dialects) spares the password another trip."""
    from resellctl import errors
    from resellctl.errors import UpstreamError

    try:
        doc = transport.call("item.event.list", {"after": 0, "limit": 1}, deadline=deadline)
    except UpstreamError as error:
        if error.kind in (errors.AUTH, errors.TRANSIENT):
            raise
        return "bm6"
    return "events" if "elem" in doc or "more" in doc else "bm6"


class Upstreams:
    """The clients of a store's billmanager modules, one per module, made when first needed
    and closed together. ``password(module)`` gives a module's password (the store keeps it
    apart from the books); ``trace`` and ``notify`` are handed to every transport (``-v``, and
    retries said on a terminal)."""

    def __init__(self, password, trace=None, notify=None):
        self._password = password
        self.trace, self.notify = trace, notify
        self._clients = {}

    def client(self, module):
        """The client of billmanager ``module`` (a row of processingmodule)."""
        if module["id"] not in self._clients:
            client = connect(module["url"], module["username"], self._password(module),
                             module["api"] or "events", module["name"])
            client.transport.trace, client.transport.notify = self.trace, self.notify
            self._clients[module["id"]] = client
        return self._clients[module["id"]]

    def close(self):
        for client in self._clients.values():
            client.close()
        self._clients.clear()

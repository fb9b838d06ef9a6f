"""The embedded selling BILLmanager: a real HTTP server speaking the protocol of
docs/protocol.md in each of its dialects (events, bm6, bm5).

It is the protocol's reference implementation, and what the end-to-end tests, the demo and
the benchmarks run against::

    sim = Simulator(username="reseller@example.net", password="secret", balance="100.00")
    with serve(sim) as server:          # a daemon thread on a free loopback port
        requests.post(server.url, data={"func": "subaccount", "out": "json",
                                        "authinfo": "reseller@example.net:secret"})
        sim.suspend("4201", msg="abuse")  # what happens upstream on its own

``Simulator(api="bm6", quirks=["no-paging"])`` answers as a real BILLmanager 6 does, with one of
the quirks some real upstreams show.
Only the standard library is used here, so the simulator costs nothing to import.
"""

from resellctl.sim.server import SimServer, serve
from resellctl.sim.state import Item, Simulator

__all__ = ["Item", "SimServer", "Simulator", "serve"]

"""Polling sync: `resellctl checkevent` keeping services in step with a BILLmanager 6 by listing.

For each store size, the simulator (`resellctl sim serve --api bm6`) runs in its own process,
seeded through its admin endpoint; the store's services are written through resellctl.store,
linked to the seeded items, and hold what the upstream shows (status, expiry, tariff,
parameters, resources), so that a first run has nothing to apply. `resellctl checkevent -q`
runs as a real subprocess, each run on a fresh copy of those books: first with nothing changed
upstream (steady state), then with 1% of the services changed upstream (half a parameter, half
an expiry). Requests are counted on the simulator's side.

The reference is a bare `requests.Session` loop, run as a script of its own in this same run,
fetching the same list pages (`func=vds`, `p_cnt=1000`, `p_num` 1, 2, ...) from the same
simulator and decoding them: the least any polling sync must do. Runs are interleaved; medians.

Targets: resellctl's run at most twice the loop's time (ratio >= 0.50), every size, both runs;
requests that grow with list pages and changed services, not one form read per service (at
most 2 x (pages + changed services) + 25: the login, the balance, the rotation's least share);
the largest store synced well inside checkevent's 240 s budget (under a quarter of it); peak
memory under 150 MiB.

    python bench/poll_sync.py            # 1,000, 10,000 and 100,000 services
    python bench/poll_sync.py --quick    # a smoke run
"""

import collections
import datetime
import os
import statistics
import sys

from _harness import (RESELLCTL, USERNAME, SimProcess, Workdir, arguments, cli_env, fresh_copy,
                      machine, timed, upstream_store, verdict)

from resellctl.store import Store, now

PAGE = 1000  # rows per list page, as resellctl.poll asks
CHANGED_SHARE = 100  # one service in this many changed upstream
PARAMS = {"domain": "vm.example.net", "ip": "192.0.2.10", "ostempl": "debian-12"}
TARGET_RATIO = 1 / 2
BUDGET = 240.0  # seconds: checkevent's default time budget
WELL_INSIDE = BUDGET / 4
MEMORY_TARGET = 150 * 2**20
OVERHEAD = 25  # requests beyond pages and changes: login, balance, the rotation's least share

# The reference, run as a script of its own: start-up and the import of requests count on both
# sides. It stops where resellctl does: at the first page shorter than asked.
_BARE_LOOP = """
import sys
import requests
url, username, password_file, size = sys.argv[1:]
with open(password_file) as stream:
    auth = username + ":" + stream.readline().strip()
session, number = requests.Session(), 1
while True:
    doc = session.post(url, timeout=300, data={"func": "vds", "out": "json", "authinfo": auth,
                                               "p_cnt": size, "p_num": number}).json()["doc"]
    if len(doc.get("elem", [])) < int(size):
        break
    number += 1
"""

Phase = collections.namedtuple("Phase", "seconds peak requests pages edits loop")


def linked_books(db_path, sim, password_file):
    """A store whose services, one per upstream item, hold what the upstream shows of it."""
    upstream_store(db_path, sim, password_file)
    items = sim.admin("state")["items"]
    store = Store.open(db_path)
    module = store.one("SELECT id FROM processingmodule WHERE name = 'up'")[0]
    tariffs = {r["remote_id"]: r["id"] for r in store.all(
        "SELECT id, remote_id FROM pricelist WHERE processingmodule = ?", (module,))}
    stamp = now()
    with store.write():
        store.conn.executemany(
            "INSERT INTO item (id, remoteid, client, pricelist, itemtype, status, "
            "processingmodule, period, expiredate, upstream_module, upstream_id, cdate, mdate) "
            "VALUES (?, ?, 'bench', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((int(i["remoteid"]), i["remoteid"], tariffs[i["pricelist"]], i["itemtype"],
              i["status"], module, i["period"], i["expiredate"], module, i["id"], stamp, stamp)
             for i in items))
        for table, field in (("itemparam", "params"), ("itemaddon", "addons")):
            store.conn.executemany(
                f"INSERT INTO {table} (item, name, value) VALUES (?, ?, ?)",
                ((int(i["remoteid"]), name, value) for i in items
                 for name, value in i[field].items()))
    store.close()
    return [i["id"] for i in items]


def change_upstream(sim, upstream_ids):
    """One service in CHANGED_SHARE changed upstream: a parameter, or the next an expiry.
    Returns ``{"setparam": n, "prolong": n}``."""
    changed = upstream_ids[CHANGED_SHARE // 2::CHANGED_SHARE] or upstream_ids[:1]
    expiry = (datetime.date.today() + datetime.timedelta(days=400)).isoformat()
    for n, upstream_id in enumerate(changed):
        if n % 2:
            sim.admin("expiredate", {"item": upstream_id, "date": expiry})
        else:
            sim.admin("setparam", {"item": upstream_id, "params": {"domain": f"new{n}.example"}})
    return {"setparam": (len(changed) + 1) // 2, "prolong": len(changed) // 2}


def funcs_since(sim, seen):
    """The funcs of the API requests the simulator received after its first ``seen``."""
    return collections.Counter(r["func"] for r in sim.admin("requests")["requests"][seen:])


def applied(db_path):
    """The changes the polling applied, by type."""
    store = Store.open(db_path)
    counts = dict(store.all("SELECT type, count(*) FROM eventlog WHERE event_id IS NULL AND "
                            "outcome = 'applied' GROUP BY type"))
    store.close()
    return counts


def phase(sim, work, pristine, runs, expected):
    """``runs`` checkevent runs on fresh copies of ``pristine``, interleaved with the loop."""
    db_path = work.file("poll.db")
    ours, peaks, loops, counts = [], [], [], []
    loop = [sys.executable, "-c", _BARE_LOOP, sim.url, USERNAME, work.password_file, str(PAGE)]
    for _ in range(runs):
        fresh_copy(pristine, db_path)
        os.sync()
        seen = len(sim.admin("requests")["requests"])
        seconds, peak = timed([*RESELLCTL, "checkevent", "-q"], env=cli_env(db_path))
        funcs = funcs_since(sim, seen)
        done = applied(db_path)
        if done != expected:
            sys.exit(f"checkevent applied {done or 'nothing'}, not {expected or 'nothing'}")
        ours.append(seconds)
        peaks.append(peak)
        counts.append(funcs)
        seen += sum(funcs.values())
        loops.append(timed(loop)[0])
        if funcs_since(sim, seen)["vds"] != funcs["vds"]:
            sys.exit("the bare loop did not fetch as many list pages as checkevent")
    funcs = counts[-1]
    return Phase(statistics.median(ours), max(peaks), sum(funcs.values()), funcs["vds"],
                 funcs["vds.edit"], statistics.median(loops))


def measure(work, services, runs):
    """The steady and the 1%-changed phase on a store of ``services`` services."""
    with SimProcess(work.password_file, api="bm6") as sim:
        sim.admin("seed", {"items": services, "events": 0, "username": USERNAME,
                           "params": PARAMS})
        pristine = work.file(f"books-{services}.db")
        upstream_ids = linked_books(pristine, sim, work.password_file)
        steady = phase(sim, work, pristine, runs, {})
        expected = {kind: n for kind, n in change_upstream(sim, upstream_ids).items() if n}
        moved = phase(sim, work, pristine, runs, expected)
    return steady, moved, sum(expected.values())


def main():
    args = arguments(__doc__.splitlines()[0], small=(1_000, 50, "services, smallest store"),
                     medium=(10_000, 200, "services, middle store"),
                     large=(100_000, 1_100, "services, largest store"),
                     runs=(3, 1, "runs of each, interleaved"))
    sizes = (args.small, args.medium, args.large)
    with Workdir() as work:
        results = [(services, *measure(work, services, args.runs)) for services in sizes]
    print(f"polling sync: checkevent against a bm6 simulator in a separate process, stores of "
          f"{', '.join(f'{n:,}' for n in sizes)} services, median of {args.runs} interleaved "
          f"runs ({machine()})")
    ok = True
    for services, steady, moved, changed in results:
        for name, run, changes in (("steady", steady, 0), (f"{changed:,} changed", moved,
                                                           changed)):
            ratio = run.loop / run.seconds
            allowed = 2 * (run.pages + changes) + OVERHEAD
            fits = (ratio >= TARGET_RATIO and run.requests <= allowed
                    and run.peak < MEMORY_TARGET)
            ok = ok and fits
            print(f"  {services:>7,} services, {name + ':':<14} {run.seconds:6.2f} s, "
                  f"{run.requests:5,} requests ({run.pages} list pages, {run.edits} forms; "
                  f"at most {allowed:,}), peak {run.peak / 2**20:3.0f} MiB; bare loop "
                  f"{run.loop:6.2f} s, ratio {ratio:.2f}: {verdict(fits)}")
    largest = max(results[-1][1].seconds, results[-1][2].seconds)
    inside = largest < WELL_INSIDE
    print(f"  largest store's slowest run: {largest:.1f} s (target < {WELL_INSIDE:.0f} s, a "
          f"quarter of the {BUDGET:.0f} s budget): {verdict(inside)}")
    print(f"  targets: ratio >= {TARGET_RATIO:.2f}; requests <= 2 x (pages + changed) + "
          f"{OVERHEAD}; peak memory < {MEMORY_TARGET // 2**20} MiB")
    return 0 if args.quick or (ok and inside) else 1


if __name__ == "__main__":
    sys.exit(main())

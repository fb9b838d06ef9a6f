"""checkevent throughput: a backlog of setparam events applied by `resellctl checkevent`.

The simulator runs in its own process and serves the backlog over loopback HTTP; checkevent
runs as a real subprocess into a store whose services are linked to the simulator's items.
The reference is a bare sqlite3 loop, in this same run, that is handed the same events already
decoded in memory and, in one transaction, inserts each into an event log table and upserts its
parameters: the least any event sync must do. Targets: checkevent's rate >= 1/3 of the
reference's (aim 1/2), checkevent's peak memory < 150 MiB.

    python bench/checkevent_throughput.py            # 100,000 events over 10,000 services
    python bench/checkevent_throughput.py --quick    # a smoke run
"""

import json
import os
import sqlite3
import statistics
import sys
import time
import urllib.parse
import urllib.request

from _harness import (PASSWORD, RESELLCTL, USERNAME, SimProcess, Workdir, arguments, cli_env,
                      fresh_copy, machine, timed, upstream_store, verdict)

from resellctl.store import Store, now

TARGET_RATIO, AIM_RATIO = 1 / 3, 1 / 2
MEMORY_TARGET = 150 * 2**20


def linked_store(db_path, sim, password_file, pairs):
    """A store with one service per seeded upstream item, linked as an order would link it."""
    upstream_store(db_path, sim, password_file)
    store = Store.open(db_path)
    module, tariff = store.one("SELECT processingmodule, id FROM pricelist WHERE remote_id = '11'")
    stamp = now()
    with store.write():
        store.conn.executemany(
            "INSERT INTO item (id, client, pricelist, itemtype, status, processingmodule, "
            "period, expiredate, upstream_module, upstream_id, cdate, mdate) "
            "VALUES (?, 'bench', ?, 'vds', 2, ?, 1, '2030-01-01', ?, ?, ?, ?)",
            ((int(remoteid), tariff, module, module, upstream_id, stamp, stamp)
             for upstream_id, remoteid in pairs))
    store.close()


def fetch_events(sim):
    """The whole backlog, decoded, as the reference is handed it (not timed)."""
    events, after = [], 0
    while True:
        form = urllib.parse.urlencode({"func": "item.event.list", "out": "json", "after": after,
                                       "limit": 1000, "authinfo": f"{USERNAME}:{PASSWORD}"})
        with urllib.request.urlopen(sim.url, data=form.encode(), timeout=60) as answer:
            doc = json.load(answer)["doc"]
        page = doc.get("elem", [])
        events.extend(page)
        if doc["more"]["$"] != "on" or not page:
            return events
        after = int(page[-1]["id"]["$"])


def reference(events, db_path, items):
    """The bare loop: log each event and upsert its parameters, one transaction; seconds."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE eventlog (id INTEGER PRIMARY KEY, module INTEGER, "
                 "event_id INTEGER, type TEXT, date TEXT, item INTEGER, upstream_item TEXT)")
    conn.execute("CREATE UNIQUE INDEX eventlog_event ON eventlog (module, event_id)")
    conn.execute("CREATE TABLE itemparam (item INTEGER, name TEXT, value TEXT, "
                 "PRIMARY KEY (item, name))")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for event in events:
        upstream = event["item"]["$"]
        item = items[upstream]
        conn.execute("INSERT INTO eventlog (module, event_id, type, date, item, upstream_item) "
                     "VALUES (1, ?, ?, ?, ?, ?)",
                     (int(event["id"]["$"]), event["type"]["$"], event["date"]["$"], item,
                      upstream))
        for param in event["param"]:
            conn.execute("INSERT INTO itemparam (item, name, value) VALUES (?, ?, ?) "
                         "ON CONFLICT (item, name) DO UPDATE SET value = excluded.value",
                         (item, param["$name"], param["$"]))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def check_applied(db_path, events, services):
    """Every event logged as applied, and each service holding its last event's parameter."""
    store = Store.open(db_path)
    applied = store.one("SELECT count(*) FROM eventlog WHERE outcome = 'applied'")[0]
    last = {}
    for event in events:
        last[event["item"]["$"]] = event["param"][0]["$"]
    wrong = sum(1 for upstream_id, value in store.all(
        "SELECT item.upstream_id, itemparam.value FROM item JOIN itemparam "
        "ON itemparam.item = item.id AND itemparam.name = 'note'")
        if last.get(upstream_id) != value)
    store.close()
    if applied != len(events) or wrong or len(last) != services:
        sys.exit(f"checkevent applied {applied} of {len(events)} events; {wrong} services hold "
                 "the wrong parameter")


def main():
    args = arguments(__doc__.splitlines()[0], services=(10_000, 500, "services"),
                     events=(100_000, 5_000, "setparam events"),
                     runs=(5, 1, "runs of each, interleaved"))
    with Workdir() as work, SimProcess(work.password_file) as sim:
        pairs = sim.admin("seed", {"items": args.services, "events": args.events,
                                   "username": USERNAME})["items"]
        pristine, db_path = work.file("linked.db"), work.file("checkevent.db")
        linked_store(pristine, sim, work.password_file, pairs)
        events = fetch_events(sim)
        items = {upstream_id: int(remoteid) for upstream_id, remoteid in pairs}
        ours, theirs, peaks = [], [], []
        for n in range(args.runs):
            # Every run applies the whole backlog (the simulator keeps applied events for
            # days) to a store as it was before the first, and starts with nothing left to
            # write back from the run before it.
            fresh_copy(pristine, db_path)
            os.sync()
            seconds, peak = timed([*RESELLCTL, "checkevent", "-q"], env=cli_env(db_path))
            check_applied(db_path, events, args.services)
            ours.append(seconds)
            peaks.append(peak)
            os.sync()
            theirs.append(reference(events, work.file(f"reference{n}.db"), items))
    seconds, peak = statistics.median(ours), max(peaks)
    reference_rate = len(events) / statistics.median(theirs)
    rate = len(events) / seconds
    ratio = rate / reference_rate
    print(f"checkevent throughput: {len(events):,} setparam events over {args.services:,} "
          f"services, simulator in a separate process, median of {args.runs} interleaved runs "
          f"({machine()})")
    print(f"  resellctl checkevent:   {rate:10,.0f} events/s ({seconds:.2f} s, whole process)")
    print(f"  bare sqlite3 loop:      {reference_rate:10,.0f} events/s (events already in "
          "memory)")
    print(f"  ratio: {ratio:.2f} (target >= {TARGET_RATIO:.2f}, aim {AIM_RATIO:.2f}): "
          f"{verdict(ratio >= TARGET_RATIO)}")
    print(f"  checkevent peak memory: {peak / 2**20:.0f} MiB (target < "
          f"{MEMORY_TARGET // 2**20} MiB): {verdict(peak < MEMORY_TARGET)}")
    return 0 if args.quick or (ratio >= TARGET_RATIO and peak < MEMORY_TARGET) else 1


if __name__ == "__main__":
    sys.exit(main())

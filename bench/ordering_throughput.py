"""Ordering throughput: `resellctl order VDS-1 --quantity 100` against the simulator.

The simulator runs in its own process. `resellctl order` runs as a real subprocess on a store
with the module and its tariffs set up; the reference is a bare `requests.Session` loop, in
this same run, posting the same orders (the same form, distinct remoteids) to the same
simulator. All alternate over a few rounds; medians. Two comparisons, both with target >= 1/2:
  process to process: resellctl against the bare loop run as a script of its own, both paying
    the interpreter's start and the import of requests;
  per order: what each order beyond the first adds to resellctl's run (--quantity N less
    --quantity 1) against one turn of the bare loop.
Start-up itself is the subject of bench/startup.py.

    python bench/ordering_throughput.py            # 100 orders, 5 rounds
    python bench/ordering_throughput.py --quick    # a smoke run
"""

import json
import os
import statistics
import sys

from _bare_order import bare_loop
from _harness import (PASSWORD, RESELLCTL, USERNAME, SimProcess, Workdir, arguments, cli, cli_env,
                      machine, timed, upstream_store, verdict)

TARGET_RATIO = 1 / 2
FIRST_BARE_REMOTEID = 1_000_000  # far from the store's service numbers, which resellctl sends
BARE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bare_order.py")


def main():
    args = arguments(__doc__.splitlines()[0], quantity=(100, 5, "services per order"),
                     rounds=(5, 1, "rounds of each"))
    times = {"loop": [], "script": [], "order": [], "order1": []}
    with Workdir() as work, SimProcess(work.password_file, balance="1000000.00") as sim:
        db_path = work.file("order.db")
        upstream_store(db_path, sim, work.password_file)
        tariff = next(t["remote_id"] for t in json.loads(cli(db_path, "tariffs", "list", "--json"))
                      if t["name"] == "VDS-1")
        remoteid = FIRST_BARE_REMOTEID
        for _ in range(args.rounds):
            times["loop"].append(bare_loop(sim.url, USERNAME, PASSWORD, tariff, remoteid,
                                           args.quantity))
            times["script"].append(timed([sys.executable, BARE_SCRIPT, sim.url, USERNAME,
                                          work.password_file, tariff,
                                          str(remoteid + args.quantity), str(args.quantity)])[0])
            remoteid += 2 * args.quantity
            times["order"].append(timed([*RESELLCTL, "order", "VDS-1", "--quantity",
                                         str(args.quantity), "-q"], env=cli_env(db_path))[0])
            times["order1"].append(timed([*RESELLCTL, "order", "VDS-1", "-q"],
                                         env=cli_env(db_path))[0])
        waiting = len(cli(db_path, "ops", "list", "--status", "waiting", "-q", "--limit", "0")
                      .split())
    if waiting != (args.quantity + 1) * args.rounds:
        sys.exit(f"resellctl left {waiting} operations waiting, not "
                 f"{(args.quantity + 1) * args.rounds}")
    t = {name: statistics.median(values) for name, values in times.items()}
    n = args.quantity
    process_ratio = t["script"] / t["order"]
    marginal = t["order"] - t["order1"]
    marginal_ratio = (t["loop"] / n) / (marginal / (n - 1)) if marginal > 0 else float("inf")
    print(f"ordering throughput: {n} vds orders, simulator in a separate process, median of "
          f"{args.rounds} rounds ({machine()})")
    print(f"  resellctl order --quantity {n}:   {n / t['order']:7,.0f} orders/s "
          f"({t['order']:.3f} s, whole process)")
    print(f"  bare requests loop, as a script:  {n / t['script']:7,.0f} orders/s "
          f"({t['script']:.3f} s, whole process)")
    print(f"    ratio, process to process: {process_ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
          f"{verdict(process_ratio >= TARGET_RATIO)}")
    per_order = f"{marginal / (n - 1) * 1000:.2f} ms" if marginal > 0 else "below the noise"
    print(f"  resellctl per order, beyond the first: {per_order} "
          f"(--quantity {n} less --quantity 1: {t['order1']:.3f} s)")
    print(f"  bare requests loop alone, per order:   {t['loop'] / n * 1000:.2f} ms")
    print(f"    ratio, per order: {marginal_ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
          f"{verdict(marginal_ratio >= TARGET_RATIO)}")
    print(f"  for the record, whole process to loop alone: ratio {t['loop'] / t['order']:.2f} "
          "(start-up included on one side only)")
    ok = process_ratio >= TARGET_RATIO and marginal_ratio >= TARGET_RATIO
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

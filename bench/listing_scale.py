"""Listing at scale: filtered listings on stores of growing size, as real subprocesses.

Stores of 10k, 100k and 1,000,000 operations (2k, 20k and 200,000 services, and as many
received events as operations) are written straight through the store layer. Each listing is
timed as a user runs it (median of a few runs), side by side with the reference,
`python -c "import click"`, measured in the same run.
Targets: each listing under 0.3 s on every store, and flat: the largest store no slower than
1.5x the smallest. The last row proves that listings stream: every active service of the store
(--limit 0) piped into `head -1` costs no more than one page.

    python bench/listing_scale.py            # 10k, 100k and 1M operations
    python bench/listing_scale.py --quick    # a smoke run
"""

import shlex
import sys

from _harness import (RESELLCTL, Workdir, arguments, cli_env, fill_store, machine, medians, ms,
                      verdict)

TARGET_SECONDS = 0.3
FLAT = 1.5
SERVICES_PER_OPERATION = 0.2


def listings(item):
    """name -> (shell command line, whether it is held to the targets)."""
    cli = " ".join(map(shlex.quote, RESELLCTL))
    return {
        "ops list --status failed --json": (f"{cli} ops list --status failed --json", True),
        f"ops list --item {item}": (f"{cli} ops list --item {item}", True),
        "services list --status 2 -q | head": (f"{cli} services list --status 2 -q | head",
                                               True),
        "events list --problem -q": (f"{cli} events list --problem -q", True),
        "events list --module up -q": (f"{cli} events list --module up -q", True),
        "services list --status 2 --limit 0 -q | head -1":
            (f"{cli} services list --status 2 --limit 0 -q | head -1", False),
    }


def main():
    args = arguments(__doc__.splitlines()[0], small=(10_000, 1_000, "operations, small store"),
                     medium=(100_000, 5_000, "operations, medium store"),
                     large=(1_000_000, 20_000, "operations, large store"),
                     runs=(5, 1, "runs of each command per store"))
    sizes = [args.small, args.medium, args.large]
    reference = "python -c 'import click'"
    results = {}
    with Workdir() as work:
        for size in sizes:
            db_path = work.file(f"ops{size}.db")
            fill_store(db_path, int(size * SERVICES_PER_OPERATION), size, events=size)
            commands = {name: (["sh", "-c", line], cli_env(db_path))
                        for name, (line, _) in listings(item=1).items()}
            commands[reference] = ([sys.executable, "-c", "import click"], None)
            results[size] = medians(commands, args.runs)
    print(f"listing at scale: median of {args.runs} runs, real subprocesses ({machine()})")
    names = [*listings(item=1), reference]
    width = max(map(len, names))
    print(f"  {'':{width}}" + "".join(f"{f'{size:,} ops':>14}" for size in sizes)
          + f"{'growth':>9}")
    ok = True
    for name in names:
        times = [results[size][name] for size in sizes]
        growth = times[-1] / times[0]
        held = listings(item=1).get(name, ("", False))[1]
        line = f"  {name:{width}}" + "".join(f"{ms(t):>14}" for t in times) + f"{growth:8.2f}x"
        if name != reference:
            ratios = [results[size][name] / results[size][reference] for size in sizes]
            line += "   ratio to click: " + " ".join(f"{r:.2f}" for r in ratios)
        if held:
            line += "   " + verdict(max(times) < TARGET_SECONDS and growth <= FLAT)
            ok = ok and max(times) < TARGET_SECONDS and growth <= FLAT
        print(line)
    print(f"  targets: under {TARGET_SECONDS} s on every store, growth at most {FLAT}x")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

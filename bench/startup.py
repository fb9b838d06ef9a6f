"""Start-up: what a sysadmin waits for on every call of resellctl in a loop or a pipeline.

`resellctl --version` and `resellctl ops list --json` on a small store, against the reference
`python -c "import click"` (the least a click program can cost), interleaved runs, medians.
Targets: --version within 1.5x the reference, ops list within 3x. It also shows which heavy
modules the read-only commands import: none of requests, tenacity and rich may be among them.

    python bench/startup.py            # 21 interleaved runs
    python bench/startup.py --quick    # a smoke run
"""

import subprocess
import sys

from _harness import (RESELLCTL, Workdir, arguments, cli_env, fill_store, machine, medians, ms,
                      verdict)

TARGETS = {"resellctl --version": 1.5, "resellctl ops list --json": 3.0}
HEAVY = ("requests", "tenacity", "rich", "sqlite_utils", "urllib3")
READ_ONLY = (["--version"], ["ops", "list"], ["services", "list"], ["tasks", "list"])

# Runs the command line in-process, its output discarded, and prints the heavy modules it
# imported.
_PROBE = """
import os, sys
from resellctl.cli import main
sys.argv = ["resellctl", *sys.argv[1:]]
sys.stdout = open(os.devnull, "w")
try:
    main()
except SystemExit:
    pass
print(" ".join(m for m in {heavy!r} if m in sys.modules), file=sys.__stdout__)
"""


def heavy_imports(db_path, args):
    """The heavy modules ``resellctl ARGS`` imports."""
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args],
                          env=cli_env(db_path), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"resellctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def main():
    args = arguments(__doc__.splitlines()[0], runs=(21, 3, "interleaved runs"))
    with Workdir() as work:
        db_path = work.file("small.db")
        fill_store(db_path, services=20, operations=100)
        commands = {
            "python -c 'import click'": ([sys.executable, "-c", "import click"], None),
            "resellctl --version": ([*RESELLCTL, "--version"], cli_env(db_path)),
            "resellctl ops list --json": ([*RESELLCTL, "ops", "list", "--json"],
                                          cli_env(db_path)),
        }
        times = medians(commands, args.runs)
        imported = {" ".join(a): heavy_imports(db_path, a) for a in READ_ONLY}
    reference = times["python -c 'import click'"]
    print(f"start-up: median of {args.runs} interleaved runs ({machine()})")
    ok = True
    for name, seconds in times.items():
        line = f"  {name:28}{ms(seconds):>8}"
        if name in TARGETS:
            ratio = seconds / reference
            ok = ok and ratio <= TARGETS[name]
            line += f"   ratio {ratio:.2f} (target <= {TARGETS[name]}): " + verdict(
                ratio <= TARGETS[name])
        print(line)
    for command, modules in imported.items():
        print(f"  heavy imports of `resellctl {command}`: {modules or 'none'}")
        ok = ok and not modules
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

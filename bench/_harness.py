"""What the benchmark scripts share: the simulator in its own process, stores made fast
through the store layer, the command line run as a real subprocess, and the report.

Every figure a script prints comes with its reference measured in the same run, so the ratio
holds on any machine even where the absolute times do not.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from resellctl.store import Store, now

USERNAME = "bench@example.net"
PASSWORD = "bench-Pa55word"
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "resellctl")
# What a sysadmin runs: the console script `pip install -e .` made, else the module.
RESELLCTL = [_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "resellctl"]


def arguments(description, **sizes):
    """The script's options: ``--quick`` for a smoke run, plus one option per size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="Tiny sizes and few runs: checks the script works, measures little.")
    for name, (full, quick, help_text) in sizes.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                            help=f"{help_text} (default {full}; {quick} with --quick)")
    args = parser.parse_args()
    for name, (full, quick, _) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


class Workdir:
    """A temporary directory holding the stores and the password file; removed at the end."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="resellctl-bench-")
        self.password_file = self.file("upstream.pw")
        fd = os.open(self.password_file, os.O_CREAT | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(PASSWORD + "\n")

    def file(self, name):
        return os.path.join(self.path, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        shutil.rmtree(self.path, ignore_errors=True)


class SimProcess:
    """``resellctl sim serve`` in a separate process, speaking dialect ``api``: ``url`` is its
    API, ``admin()`` acts on it."""

    def __init__(self, password_file, balance="100.00", api="events"):
        self.proc = subprocess.Popen(
            [*RESELLCTL, "sim", "serve", "--port", "0", "--username", USERNAME,
             "--password-file", password_file, "--balance", balance, "--api", api],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            sys.exit(f"the simulator did not start (it printed {self.url!r})")
        self.base = self.url.rsplit("/", 1)[0]

    def admin(self, action, body=None):
        request = urllib.request.Request(f"{self.base}/sim/{action}",
                                         data=json.dumps(body or {}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as answer:
            return json.load(answer)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def cli_env(db_path):
    """The environment of a resellctl subprocess working on ``db_path``."""
    return dict(os.environ, RESELLCTL_DB=db_path)


def cli(db_path, *args):
    """Run ``resellctl ARGS`` (a subprocess); its stdout, or exit with its error."""
    done = subprocess.run([*RESELLCTL, *args], env=cli_env(db_path), capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"resellctl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def upstream_store(db_path, sim, password_file):
    """A new store with the billmanager module ``up`` on ``sim`` and its tariffs imported."""
    cli(db_path, "modules", "add", "up", "--type", "billmanager", "--url", sim.url,
        "--username", USERNAME, "--password-file", password_file)
    cli(db_path, "tariffs", "import", "up")


def fresh_copy(source, target):
    """``target`` as a private copy of the store ``source`` and its secrets file, without what
    an earlier run left."""
    for suffix in ("", "-wal", "-shm", ".secrets"):
        if os.path.exists(target + suffix):
            os.remove(target + suffix)
    for suffix in ("", ".secrets"):
        with open(source + suffix, "rb") as src, os.fdopen(os.open(
                target + suffix, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as dst:
            shutil.copyfileobj(src, dst)


def fill_store(db_path, services, operations, events=0, failed_every=100):
    """A store with ``services`` services and ``operations`` operations under a manual module,
    and ``events`` received events of two billmanager modules, written straight through the
    store layer in large transactions (seconds for millions).

    Services are mostly active (status 2); every ``failed_every``-th operation has failed, the
    rest are done, and every service has its share of the operations. Nine events in ten are
    module ``up``'s, one in ``failed_every`` could not be applied.
    """
    store = Store.open(db_path, create=True)
    stamp = now()
    with store.write():
        module = store.conn.execute(
            "INSERT INTO processingmodule (name, type, cdate) VALUES ('manual', 'manual', ?)",
            (stamp,)).lastrowid
        tariff = store.conn.execute(
            "INSERT INTO pricelist (processingmodule, remote_id, name, itemtype, currency, "
            "updated) VALUES (?, '11', 'VDS-1', 'vds', 'EUR', ?)", (module, stamp)).lastrowid
    statuses = (2, 2, 2, 2, 2, 2, 3, 4, 1, 5)
    with store.write():
        store.conn.executemany(
            "INSERT INTO item (id, client, pricelist, itemtype, status, processingmodule, period,"
            " expiredate, cdate, mdate) VALUES (?, ?, ?, 'vds', ?, ?, 1, '2030-01-01', ?, ?)",
            ((n, f"client{n % 997}", tariff, statuses[n % 10], module, stamp, stamp)
             for n in range(1, services + 1)))
    for first in range(1, operations + 1, 500_000):
        last = min(operations, first + 499_999)
        with store.write():
            store.conn.executemany(
                "INSERT INTO runningoperation (id, desc, item, itemtype, client, cdate, trycount, "
                "processingmodule, status, operation, params, mdate, error_type, error_message) "
                "VALUES (?, ?, ?, 'vds', ?, ?, 1, ?, ?, 'prolong', '{\"period\": 1}', ?, ?, ?)",
                _operations(first, last, services, failed_every, module, stamp))
    with store.write():
        up, other = (store.conn.execute(
            "INSERT INTO processingmodule (name, type, cdate) VALUES (?, 'billmanager', ?)",
            (name, stamp)).lastrowid for name in ("up", "other"))
    for first in range(1, events + 1, 500_000):
        last = min(events, first + 499_999)
        with store.write():
            store.conn.executemany(
                "INSERT INTO eventlog (processingmodule, event_id, type, date, received, item, "
                "upstream_item, outcome, reason) VALUES (?, ?, 'setparam', ?, ?, ?, ?, ?, ?)",
                _events(first, last, services, failed_every, up, other, stamp))
    store.close()


def _events(first, last, services, failed_every, up, other, stamp):
    for n in range(first, last + 1):
        item = (n * 7919) % services + 1
        problem = n % failed_every == 0
        yield (other if n % 10 == 0 else up, n, stamp, stamp, None if problem else item,
               str(4200 + item), "unknown" if problem else "applied",
               "no service with upstream item" if problem else None)


def _operations(first, last, services, failed_every, module, stamp):
    for n in range(first, last + 1):
        item = (n * 7919) % services + 1
        failed = n % failed_every == 0
        yield (n, f"Prolong service {item}", item, f"client{item % 997}", stamp, module,
               "failed" if failed else "done", stamp, "transient" if failed else None,
               "prolong on billing.example.com: HTTP 502 Bad Gateway" if failed else None)


# Starts the measured command (its stdout to the file argv[1]) and prints its time, peak
# memory and exit status as JSON. A small process of its own, because Linux counts in a
# child's peak memory that of the process it was forked from: a script holding a backlog in
# memory would otherwise inflate the figure of every command it starts.
_LAUNCHER = """
import json, os, sys, time
out = [(os.POSIX_SPAWN_OPEN, 1, sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ, file_actions=out)
_, status, usage = os.wait4(pid, 0)
print(json.dumps([time.perf_counter() - start, usage.ru_maxrss * 1024,
                  os.waitstatus_to_exitcode(status)]))
"""


def timed(command, env=None, stdout=os.devnull):
    """Run ``command`` (a list), its stdout to the file ``stdout``: its wall-clock seconds and
    peak memory in bytes. Exits the script if the command fails."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, stdout, *command], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    try:
        seconds, peak, status = json.loads(done.stdout.splitlines()[-1])
    except (IndexError, ValueError):
        status = "no report"
    if done.returncode or status:
        sys.exit(f"{' '.join(command)} failed ({status}): {done.stderr.strip()}")
    return seconds, peak


def medians(commands, runs):
    """``{name: (command, env)}``, each run ``runs`` times, interleaved: the median seconds."""
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            times[name].append(timed(command, env=env)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def machine():
    """``date, nproc, CPU model, Python`` for the report's first line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as stream:
            cpu = next(line.split(":", 1)[1].strip() for line in stream
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{time.strftime('%Y-%m-%d')}, {len(os.sched_getaffinity(0))} cores, {cpu}, "
            f"Python {platform.python_version()}")


def verdict(ok):
    return "meets the target" if ok else "MISSES the target"


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"

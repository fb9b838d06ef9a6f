"""The benchmark scripts keep working: each runs with tiny sizes, exits 0 and prints its ratio
against its reference. No time is asserted here: the figures are the scripts' business."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script, sizes", [
    ("checkevent_throughput.py", ["--services", "20", "--events", "300"]),
    ("listing_scale.py", ["--small", "100", "--medium", "200", "--large", "400"]),
    ("startup.py", ["--runs", "1"]),
    ("ordering_throughput.py", ["--quantity", "3"]),
    ("poll_sync.py", ["--small", "20", "--medium", "40", "--large", "1001"]),
])
def test_bench_script_runs_and_prints_its_ratio(script, sizes):
    done = subprocess.run([sys.executable, str(BENCH / script), "--quick", *sizes],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"ratio[^\n]*\d+\.\d\d", done.stdout), done.stdout
    assert "Traceback" not in done.stderr

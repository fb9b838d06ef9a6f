"""The real thing: `resellctl` as separate processes, as cron and shell pipelines run it."""

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ERROR, PASSWORD, SUCCESS, USERNAME, tsv

pytestmark = pytest.mark.slow  # resellctl as separate processes

SCRIPT = Path(sys.executable).parent / "resellctl"
ENTRY_POINTS = [pytest.param([sys.executable, "-m", "resellctl"], id="python-m")]
if SCRIPT.exists():
    ENTRY_POINTS.append(pytest.param([str(SCRIPT)], id="console-script"))


@pytest.fixture(params=ENTRY_POINTS)
def resellctl(request, tmp_path):
    """Run resellctl in a new process: ``resellctl(*args, input=...)`` -> CompletedProcess."""
    env = {**os.environ, "RESELLCTL_DB": str(tmp_path / "resellctl.db"),
           "RESELLCTL_RETRY_WAIT": "0", "RESELLCTL_RETRY_ATTEMPTS": "2"}
    env.pop("RESELLCTL_SIM_URL", None)
    env.pop("PYTHONUNBUFFERED", None)  # stdout buffered in a pipe, as users have it

    def run(*args, input=None, **kwargs):
        kwargs.setdefault("capture_output", "stdout" not in kwargs)
        return subprocess.run([*request.param, *map(str, args)], input=input, env=env,
                              text=True, timeout=60, **kwargs)

    run.command, run.env = request.param, env
    return run


def clean(result, code=SUCCESS):
    """Check the exit status and that nothing went wrong on stderr; the result."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    for text in (result.stdout, result.stderr):
        assert "Traceback" not in text and PASSWORD not in text
    return result


@pytest.fixture
def low_balance_sim(resellctl, tmp_path):
    """`resellctl sim serve` on port 0, its balance too low for an order; its URL."""
    password_file = tmp_path / "upstream.pw"
    password_file.write_text(PASSWORD + "\n")
    process = subprocess.Popen(
        [*resellctl.command, "sim", "serve", "--port", "0", "--username", USERNAME,
         "--password-file", str(password_file), "--balance", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=resellctl.env)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/billmgr"), url
        yield url, password_file
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == SUCCESS and out == ""
    assert PASSWORD not in err and "Traceback" not in err


def test_low_balance_topup_start_from_a_pipe_then_checkevent(resellctl, low_balance_sim):
    url, password_file = low_balance_sim
    r = clean(resellctl("modules", "add", "vds-up", "--type", "billmanager", "--url", url,
                        "--username", USERNAME, "--password-file", password_file))
    assert r.stdout == "" and "vds-up" in r.stderr
    clean(resellctl("tariffs", "import", "vds-up"))

    r = clean(resellctl("order", "VDS-1", "--quantity", "2", "--client", "acme"), code=ERROR)
    assert [row["status"] for row in tsv(r.stdout)] == ["failed", "failed"]
    assert "Insufficient funds" in r.stderr and "Insufficient" not in r.stdout
    assert "resellctl ops start 1" in r.stderr
    assert clean(resellctl("tasks", "list", "-q")).stdout == ""

    assert clean(resellctl("sim", "topup", "50", "--url", url)).stdout == "53.00\n"

    # resellctl ops list --status failed -q | resellctl ops start -
    env, command = resellctl.env, resellctl.command
    listing = subprocess.Popen([*command, "ops", "list", "--status", "failed", "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    start = subprocess.Popen([*command, "ops", "start", "-"], stdin=listing.stdout,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    listing.stdout.close()
    out, err = start.communicate(timeout=60)
    assert listing.wait(timeout=10) == 0 and listing.stderr.read() == b""
    listing.stderr.close()
    assert start.returncode == SUCCESS, err
    assert [(row["runningoperation"], row["status"]) for row in tsv(out)] == [
        ("1", "waiting"), ("2", "waiting")]
    assert "Traceback" not in err

    r = clean(resellctl("checkevent"))
    assert "2 applied" in r.stdout and "2 operations completed" in r.stdout
    assert clean(resellctl("checkevent", "-q")).stdout == ""  # cron: silent when all is well
    for item in ("1", "2"):
        service = json.loads(clean(resellctl("services", "show", item, "--json")).stdout)
        assert service["status"] == 2 and service["client"] == "acme"
    ops = json.loads(clean(resellctl("ops", "list", "--json")).stdout)
    assert [(op["status"], op["trycount"]) for op in ops] == [("done", 2), ("done", 2)]
    assert clean(resellctl("tasks", "list", "--status", "open", "-q")).stdout == ""


@pytest.mark.parametrize("options", [[], ["--json"], ["-q"]], ids=["tsv", "json", "ids"])
def test_a_reader_that_leaves_early_gets_no_traceback(resellctl, tmp_path, options):
    clean(resellctl("modules", "add", "manual", "--type", "manual"))
    conn = sqlite3.connect(resellctl.env["RESELLCTL_DB"])
    with conn:  # far more than a pipe buffer holds
        conn.executemany(
            "INSERT INTO runningoperation (desc, item, itemtype, client, cdate, trycount, "
            "processingmodule, status, operation, params) VALUES "
            "('Open service 1', 1, 'vds', 'acme', '2026-01-01 00:00:00', 1, 1, 'failed', "
            "'open', '{}')", [()] * 30000)
    conn.close()
    command = shlex.join([*resellctl.command, "ops", "list", "--limit", "0", *options])
    # resellctl ops list | head -1
    r = subprocess.run(["sh", "-c", f"{command} | head -1"], env=resellctl.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0  # head's
    assert len(r.stdout.splitlines()) == 1
    assert r.stderr == ""


def test_demo_tells_the_story_in_order_in_one_stream(resellctl):
    r = resellctl("demo", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == SUCCESS, r.stdout
    lines = r.stdout.splitlines()
    assert "Traceback" not in r.stdout
    assert lines[-1] == "Done: the service is active, its operation done and its task closed."

    def after(command):
        """The first line after the line that shows ``command`` being run."""
        return lines[lines.index(f"$ resellctl {command}") + 1]

    assert after("modules add manual --type manual") == "module manual (manual) added"
    assert after("tariffs import vds-up") == "tariffs of vds-up: 4 added, 0 updated, 0 unchanged"
    order = lines.index("$ resellctl order VDS-1 --period 1 --client acme "
                        "--param ostempl=debian-12")
    assert lines[order + 1:order + 3] == ["item\trunningoperation\tstatus\ttask", "1\t1\tfailed\t"]
    assert lines[order + 3].startswith("operation 1 (service 1) failed: ")
    assert lines[order + 5:order + 7] == ["Error: 1 of 1 operation(s) failed", "(exit status 1)"]

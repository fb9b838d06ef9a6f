"""What a person at a terminal meets beyond tables, and what a pipe or cron never gets:
progress, Ctrl-C, a mistyped command."""

import signal
import time

import pytest

from helpers import (INTERRUPTED, PASSWORD, SUCCESS, USAGE, number, query, resellctl_process,
                     run_json, tsv)


def test_an_order_of_several_shows_its_progress_on_a_terminal_only(run, upstream):
    on_terminal = run("order", "VDS-1", "--quantity", "3", stderr_tty=True)
    assert on_terminal.exit_code == SUCCESS, on_terminal
    assert "VDS-1: 3 of 3 ordered" in on_terminal.stderr
    assert len(tsv(on_terminal.stdout)) == 3  # the rows, on stdout as ever
    for args in (("--quantity", "3"), ("--quantity", "3", "-q")):
        piped = run("order", "VDS-1", *args)
        assert piped.exit_code == SUCCESS and piped.stderr == "", piped
    assert run("order", "VDS-1", "-q", "--quantity", "3", stderr_tty=True).stderr == ""
    assert run("order", "VDS-1", stderr_tty=True).stderr == ""  # one: nothing to follow


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line(run, upstream):
    """A sysadmin gives up on a checkevent that waits on a slow upstream."""
    upstream.fault("delay", func="item.event.list", seconds=30)
    sent = len(upstream.requests)
    process = resellctl_process(run.db_path, "checkevent")
    stop = time.monotonic() + 60
    while time.monotonic() < stop and not any(
            q["func"] == "item.event.list" for q in upstream.requests[sent:]):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (INTERRUPTED, "", "Error: interrupted\n")
    upstream.clear_faults()
    r = run("checkevent")  # nothing held: the next run runs
    assert r.exit_code == SUCCESS, r


def test_a_mistyped_command_gets_a_suggestion(run):
    r = run("srvices", "list")
    assert r.exit_code == USAGE and r.stdout == ""
    assert r.stderr.endswith("Error: No such command 'srvices'. Did you mean 'services'?\n")
    r = run("chekevent")
    assert r.stderr.endswith("Did you mean 'checkevent'?\n")
    r = run("xyzzy")
    assert r.exit_code == USAGE and r.stderr.endswith("Error: No such command 'xyzzy'.\n")


@pytest.mark.slow
def test_an_order_interrupted_by_ctrl_c_says_how_to_send_the_rest(run, upstream):
    upstream.fault("delay", func="vds.order.param", count=20, seconds=0.2)
    process = resellctl_process(run.db_path, "order", "VDS-1", "--quantity", "20")
    stop = time.monotonic() + 60
    while time.monotonic() < stop and not query(
            run.db_path, "SELECT id FROM runningoperation WHERE status = 'waiting'"):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == INTERRUPTED, err  # as a shell reports an interrupted command
    assert "Traceback" not in err
    assert "Error: interrupted\nThe services are in the books, but operation(s) " in err
    assert "resellctl ops list --status new -q | resellctl ops start -" in err
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert left.split(), "the interrupt came after every order was sent"
    upstream.clear_faults()
    r = run("ops", "start", "-", input=left)
    assert r.exit_code == SUCCESS, r
    # Every service is ordered once upstream, none twice.
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 20
    remoteids = sorted(number(item.remoteid) for item in upstream.items.values())
    assert remoteids == list(range(1, 21))


def test_retries_are_said_on_a_terminal_and_in_verbose_mode_only(run, upstream):
    upstream.fault("500", func="pricelist.export", count=2)
    r = run("tariffs", "import", "vds-up", stderr_tty=True)
    assert r.exit_code == SUCCESS, r
    retries = [line for line in r.stderr.splitlines() if line.startswith("upstream: ")]
    assert retries == ["upstream: HTTP 500 Internal Server Error; retrying in 0 s, attempt 2 of 3",
                       "upstream: HTTP 500 Internal Server Error; retrying in 0 s, attempt 3 of 3"]
    upstream.fault("500", func="pricelist.export", count=2)
    r = run("tariffs", "import", "vds-up")  # a pipe, cron: nothing of it
    assert r.exit_code == SUCCESS and "retrying" not in r.stderr, r
    upstream.fault("500", func="pricelist.export", count=1)
    r = run("-v", "tariffs", "import", "vds-up")
    lines = [line for line in r.stderr.splitlines() if line.startswith("upstream: ")]
    assert [line.split()[1] for line in lines] == ["pricelist.export", "HTTP",
                                                   "pricelist.export"]
    assert lines[0].endswith(" transient") and lines[2].endswith(" ok")
    assert PASSWORD not in r.stderr

"""Destructive commands ask first: on a terminal they show exactly what will happen and take
[y/N]; without one they need --yes. A one-digit typo must not delete another customer's server.
"""

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys

import pytest

from helpers import (ERROR, INTERRUPTED, SUCCESS, USAGE, elids_sent, order_active, read_terminal,
                     resellctl_env, show, tsv)


def declined(result):
    """A question answered no: exit 1, nothing done; the lines it showed before asking."""
    assert result.exit_code == ERROR, result
    lines = result.stderr.splitlines()
    assert lines[-1] == "Error: not confirmed: nothing was done"
    return lines[:-1]


def test_close_without_a_terminal_needs_yes_and_does_nothing(run, upstream):
    item, _ = order_active(run, upstream)
    operations = len(show(run, item)["operations"])
    r = run("services", "close", item)
    assert r.exit_code == USAGE, r
    assert r.stderr.splitlines() == [
        "Error: services close asks before it acts, and stdin is not a terminal to ask on: "
        "give --yes to go ahead without asking"]
    assert r.stdout == ""
    assert elids_sent(upstream, "vds.delete") == []
    service = show(run, item)
    assert service["status"] == 2 and len(service["operations"]) == operations
    r = run("services", "close", item, "--yes")
    assert r.exit_code == SUCCESS, r
    assert elids_sent(upstream, "vds.delete") == [service["upstream_id"]]


def test_close_on_a_terminal_names_each_service_and_asks_once(run, upstream):
    first, _ = order_active(run, upstream, client="acme")
    second, _ = order_active(run, upstream, client="globex")
    one, two = (show(run, item)["upstream_id"] for item in (first, second))
    r = run("services", "close", first, second, stdin_tty=True, input="n\n")
    assert declined(r)[:3] == [
        "resellctl services close:",
        f"  service {first} (client acme, tariff VDS-1, upstream item {one} at vds-up): "
        "deleted upstream at once, which cannot be undone",
        f"  service {second} (client globex, tariff VDS-1, upstream item {two} at vds-up): "
        "deleted upstream at once, which cannot be undone"]
    assert r.stderr.count("[y/N]") == 1 and "Close 2 services? [y/N]" in r.stderr
    assert elids_sent(upstream, "vds.delete") == []
    assert [show(run, item)["status"] for item in (first, second)] == [2, 2]

    r = run("services", "close", first, second, stdin_tty=True, input="y\n")
    assert r.exit_code == SUCCESS, r
    assert sorted(elids_sent(upstream, "vds.delete")) == sorted([one, two])


def test_close_says_what_happens_to_each_kind_of_service(run, upstream):
    """Under a manual module a task for staff; a failed order without an upstream item is only
    given up in the books: the question says so, service by service."""
    sim = upstream
    manual, _ = order_active(run, sim)
    assert run("set-module", manual, "manual").exit_code == SUCCESS
    sim.set_balance("0.00")
    r = run("order", "VDS-1", "--json")
    [failed] = json.loads(r.stdout)
    r = run("services", "close", manual, failed["item"], stdin_tty=True, input="\n")
    upstream_id = show(run, manual)["upstream_id"]
    assert declined(r)[1:3] == [  # the default is no
        f"  service {manual} (client acme, tariff VDS-1, upstream item {upstream_id} at "
        "vds-up): a task for staff of manual module manual; closed in the books once they "
        "close the task",
        f"  service {failed['item']} (no client, tariff VDS-1, no upstream item): its order "
        f"(operation {failed['runningoperation']}) failed without reaching the upstream: given "
        "up, and the service closed in the books; nothing is sent"]


def test_a_refused_service_is_named_before_anything_is_asked(run, upstream):
    item, _ = order_active(run, upstream)
    r = run("services", "close", item, 99, stdin_tty=True, input="y\n")
    assert r.exit_code == USAGE, r
    assert "[y/N]" not in r.stderr
    assert r.stderr.splitlines()[0] == (
        "Error: 1 of 2 services refused, so nothing was done: no service 99")
    assert show(run, item)["status"] == 2 and elids_sent(upstream, "vds.delete") == []


def test_end_of_input_at_the_question_is_a_no(run, upstream):
    """Ctrl-D at [y/N]: not confirmed, in the one line any other answer but y gets."""
    item, _ = order_active(run, upstream)
    r = run("services", "close", item, stdin_tty=True, input="")
    assert declined(r)[-1] == "Close 1 service? [y/N]: "
    assert "Aborted" not in r.stderr
    assert elids_sent(upstream, "vds.delete") == [] and show(run, item)["status"] == 2


def test_ops_cancel_force_asks_naming_the_operation_its_service_and_its_task(run, upstream):
    item, _ = order_active(run, upstream)
    r = run("services", "suspend", item)
    [row] = tsv(r.stdout)
    op_id, task = row["runningoperation"], row["task"]
    upstream_id = show(run, item)["upstream_id"]

    r = run("ops", "cancel", op_id, "--force")
    assert r.exit_code == USAGE, r
    assert r.stderr.splitlines() == [
        "Error: ops cancel --force asks before it acts, and stdin is not a terminal to ask on: "
        "give --yes to go ahead without asking"]

    r = run("ops", "cancel", op_id, "--force", stdin_tty=True, input="n\n")
    assert declined(r)[:2] == [
        "resellctl ops cancel --force:",
        f"  operation {op_id} (suspend, waiting) of service {item} (client acme, tariff VDS-1, "
        f"upstream item {upstream_id} at vds-up): given up while waiting, its task {task} "
        "closed undone"]
    assert json.loads(run("ops", "show", op_id, "--json").stdout)["status"] == "waiting"

    r = run("ops", "cancel", op_id, "--force", stdin_tty=True, input="y\n")
    assert r.exit_code == SUCCESS, r
    assert json.loads(run("ops", "show", op_id, "--json").stdout)["status"] == "cancelled"


def test_ops_cancel_without_force_does_not_ask(run, upstream):
    upstream.set_balance("0.00")
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    r = run("ops", "cancel", created["runningoperation"])
    assert r.exit_code == SUCCESS, r
    assert show(run, created["item"])["status"] == 4


def test_set_module_force_asks_naming_the_waiting_operation(run, upstream):
    item, _ = order_active(run, upstream)
    [row] = tsv(run("services", "suspend", item).stdout)
    upstream_id = show(run, item)["upstream_id"]
    r = run("set-module", item, "manual", "--force")
    assert r.exit_code == USAGE and "give --yes" in r.stderr, r
    r = run("set-module", item, "manual", "--force", stdin_tty=True, input="no\n")
    assert declined(r)[:2] == [
        "resellctl set-module --force:",
        f"  service {item} (client acme, tariff VDS-1, upstream item {upstream_id} at vds-up): "
        f"processing module vds-up -> manual, leaving operation {row['runningoperation']} "
        "(suspend) waiting under vds-up"]
    assert show(run, item)["processingmodule"] == "vds-up"
    r = run("set-module", item, "manual", "--force", stdin_tty=True, input="yes\n")
    assert r.exit_code == SUCCESS, r
    assert show(run, item)["processingmodule"] == "manual"


# --- real processes: a pipe never answers, a terminal does -----------------------------------

def spawn(run, args, **streams):
    return subprocess.Popen([sys.executable, "-m", "resellctl", *map(str, args)],
                            env=resellctl_env(run.db_path), **streams)


@pytest.mark.slow
@pytest.mark.parametrize("args, piped", [(["{item}"], "y\ny\n"), (["-"], "{item}\n")],
                         ids=["yes |", "ids |"])
def test_a_pipe_never_answers_even_with_stderr_on_a_terminal(run, upstream, args, piped):
    """`yes | resellctl services close 3` and `echo 3 | resellctl services close -`, stderr on
    a terminal: without --yes nothing is deleted."""
    item, _ = order_active(run, upstream)
    main, other = pty.openpty()
    try:
        process = spawn(run, ["services", "close", *(a.format(item=item) for a in args)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=other)
        os.close(other)
        out, _ = process.communicate(piped.format(item=item).encode(), timeout=60)
        err = read_terminal(main, b"--yes").decode()
    finally:
        os.close(main)
    assert process.returncode == USAGE, err
    assert err.splitlines() == [
        "Error: services close asks before it acts, and stdin is not a terminal to ask on: "
        "give --yes to go ahead without asking"]
    assert out == b"" and elids_sent(upstream, "vds.delete") == []
    assert show(run, item)["status"] == 2


@contextlib.contextmanager
def asking(run, args, **options):
    """``resellctl ARGS`` with stdin and stderr on a terminal and stdout a pipe, as a person
    runs it: (the process, the terminal's side to read and answer on)."""
    main, other = pty.openpty()
    try:
        process = spawn(run, args, stdin=other, stdout=subprocess.PIPE, stderr=other, **options)
        os.close(other)
        yield process, main
    finally:
        os.close(main)


@pytest.mark.slow
def test_a_person_at_a_terminal_is_asked_and_the_rows_still_go_to_stdout(run, upstream):
    item, _ = order_active(run, upstream)
    with asking(run, ["services", "close", item]) as (process, main):
        shown = read_terminal(main, b"[y/N]").decode()
        assert f"service {item} (client acme, tariff VDS-1" in shown
        assert "deleted upstream at once" in shown
        os.write(main, b"y\n")
        out, _ = process.communicate(timeout=60)
    assert process.returncode == SUCCESS
    [row] = tsv(out.decode())
    assert row["item"] == str(item) and row["status"] == "waiting"
    assert elids_sent(upstream, "vds.delete") == [show(run, item)["upstream_id"]]


@pytest.mark.slow
def test_ctrl_c_at_the_question_is_an_interruption(run, upstream):
    """Ctrl-C at [y/N] exits 130 with one line, as Ctrl-C does anywhere, and does nothing."""
    item, _ = order_active(run, upstream)
    with asking(run, ["services", "close", item],
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as (process, main):
        seen = read_terminal(main, b"[y/N]")
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
        said = read_terminal(main, b"interrupted\r\n", seen[seen.index(b"[y/N]"):]).decode()
    assert process.returncode == INTERRUPTED, said
    assert said.splitlines()[1:] == ["Error: interrupted"]
    assert out == b"" and elids_sent(upstream, "vds.delete") == []
    assert show(run, item)["status"] == 2

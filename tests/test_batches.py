"""`services close/suspend/resume/prolong` take several ids, or `-` for ids from stdin: one
operation per service, one row per operation, failures reported each, one exit status."""

import json
import shlex
import subprocess
import sys

import pytest

from helpers import ERROR, SUCCESS, TEMPFAIL, USAGE, elids_sent, resellctl_env, show, tsv


def active_services(run, sim, count, client="acme"):
    r = run("order", "VDS-1", "--quantity", count, "--client", client, "--json")
    assert r.exit_code == SUCCESS, r
    assert run("checkevent").exit_code == SUCCESS
    return [created["item"] for created in json.loads(r.stdout)]


def test_several_ids_make_one_operation_each_and_an_id_given_twice_counts_once(run, upstream):
    first, second = active_services(run, upstream, 2)
    r = run("services", "suspend", first, second, first)
    assert r.exit_code == SUCCESS, r
    rows = tsv(r.stdout)
    assert [row["item"] for row in rows] == [str(first), str(second)]
    assert all(row["status"] == "waiting" and row["task"] for row in rows)
    assert len({row["runningoperation"] for row in rows}) == 2
    assert sorted(elids_sent(upstream, "vds.suspend")) == sorted(
        show(run, item)["upstream_id"] for item in (first, second))
    assert run("checkevent").exit_code == SUCCESS
    assert [show(run, item)["status"] for item in (first, second)] == [3, 3]


def test_ids_from_stdin_one_a_line_or_separated_by_blanks(run, upstream):
    first, second, third = active_services(run, upstream, 3)
    r = run("services", "prolong", "-", "--period", "1", input=f"{first}\n{second} {third}\n")
    assert r.exit_code == SUCCESS, r
    assert [row["item"] for row in tsv(r.stdout)] == [str(first), str(second), str(third)]
    assert len(elids_sent(upstream, "service.prolong")) == 3


def test_a_listing_piped_into_a_lifecycle_command(run, upstream):
    active_services(run, upstream, 2, client="acme")
    [other] = active_services(run, upstream, 1, client="globex")
    ids = run("services", "list", "--client", "acme", "-q").stdout
    r = run("services", "suspend", "-", input=ids)
    assert r.exit_code == SUCCESS, r
    assert [row["item"] for row in tsv(r.stdout)] == ids.split()
    assert show(run, other)["operations"][-1]["operation"] == "open"


def test_an_empty_stdin_is_a_quiet_day_not_an_error(run, upstream):
    active_services(run, upstream, 1)
    for command in (["suspend"], ["resume"], ["prolong"], ["close", "--yes"]):
        r = run("services", *command, "-", input="")
        assert r.exit_code == SUCCESS, r
        assert r.stdout == ""
        assert r.stderr.startswith("no services to ") and "nothing read from stdin" in r.stderr
    assert [q["func"] for q in upstream.requests if q["func"].startswith("vds.")
            and q["func"] != "vds.order.param"] == []


@pytest.mark.slow
def test_an_empty_pipe_does_not_stop_a_set_e_script(run, upstream):
    """The night nothing is suspended: `resume -` of an empty list, in a real pipeline."""
    script = ("set -euo pipefail\n"
              "resellctl services list --status 3 -q | resellctl services resume -\n"
              "echo carried on\n")
    command = f"{shlex.quote(sys.executable)} -m resellctl"
    done = subprocess.run(["bash", "-c", script.replace("resellctl ", command + " ")],
                          env=resellctl_env(run.db_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr  # the script's, which went on
    assert done.stdout == "carried on\n"
    assert "no services to resume: nothing read from stdin" in done.stderr


def test_ids_and_a_dash_together_are_refused(run, upstream):
    [item] = active_services(run, upstream, 1)
    r = run("services", "suspend", item, "-", input=f"{item}\n")
    assert r.exit_code == USAGE, r
    assert "give service ids or a lone '-' (ids from stdin), not both" in r.stderr


def test_a_refused_id_refuses_the_batch_and_names_every_refusal(run, upstream):
    first, second = active_services(run, upstream, 2)
    assert run("services", "suspend", second).exit_code == SUCCESS
    r = run("services", "suspend", first, second, "77")
    assert r.exit_code == USAGE, r
    assert r.stdout == ""
    assert r.stderr.splitlines()[0] == (
        f"Error: 2 of 3 services refused, so nothing was done: service {second} already has "
        "operation 3 (suspend) waiting; no service 77")
    assert len(show(run, first)["operations"]) == 1  # nothing written for the first either
    assert len(elids_sent(upstream, "vds.suspend")) == 1


def test_failures_are_reported_per_operation_and_the_exit_status_covers_them(run, upstream):
    """The balance pays for one prolongation of two: one waits, one fails with its reason, and
    the command exits 1."""
    first, second = active_services(run, upstream, 2)
    upstream.set_balance("7.00")  # a month of VDS-1 costs 5.00
    r = run("services", "prolong", first, second, "--period", "1")
    assert r.exit_code == ERROR, r
    rows = tsv(r.stdout)
    assert [(row["item"], row["status"]) for row in rows] == [
        (str(first), "waiting"), (str(second), "failed")]
    failed = rows[1]["runningoperation"]
    assert (f"operation {failed} (service {second}) failed: service.prolong on "
            in r.stderr)
    assert f"then run: resellctl ops start {failed}" in r.stderr
    assert r.stderr.splitlines()[-1] == "Error: 1 of 2 operation(s) failed"


def test_once_the_upstream_stops_answering_the_rest_are_not_sent(run, upstream):
    ids = active_services(run, upstream, 3)
    upstream.fault("500", func="vds.suspend", count=100)
    r = run("services", "suspend", *ids)
    assert r.exit_code == TEMPFAIL, r
    rows = tsv(r.stdout)
    assert [row["status"] for row in rows] == ["failed", "new", "new"]
    assert "not sent, as the upstream did not answer" in r.stderr
    assert "resellctl ops start" in r.stderr
    assert r.stderr.splitlines()[-1] == "Error: 1 of 3 operation(s) failed, 2 not sent"


def test_ops_cancel_refuses_the_batch_when_one_cannot_be_given_up(run, upstream):
    upstream.set_balance("0.00")
    r = run("order", "VDS-1", "--quantity", 2, "--json")
    first, second = (created["runningoperation"] for created in json.loads(r.stdout))
    upstream.set_balance("100.00")
    assert run("ops", "start", second).exit_code == SUCCESS  # now waiting upstream
    r = run("ops", "cancel", first, second)
    assert r.exit_code == USAGE, r
    assert r.stderr.splitlines()[0] == (
        f"Error: 1 of 2 operations refused, so nothing was done: only failed or new operations "
        f"can be cancelled: operation {second} is waiting")
    statuses = [json.loads(run("ops", "show", op_id, "--json").stdout)["status"]
                for op_id in (first, second)]
    assert statuses == ["failed", "waiting"]

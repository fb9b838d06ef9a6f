"""The manual processing module: the VDS-1 -> VDS-2 story of a disk change, `set-module` and its
checks, and the time-boxed override `--until-task-closed`."""

import json

from helpers import (ERROR, SUCCESS, USAGE, USERNAME, change, complete, funcs, op, open_tasks,
                     order_active, raw_event, refused, show, tsv)
from resellctl.bmdoc import scalar
from resellctl.cli.common import who


def test_vds_disk_change_is_refused_upstream_without_asking_it(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    sent = len(sim.requests)
    r = run("services", "change-tariff", item, "VDS-2")
    assert r.exit_code == USAGE, r
    assert r.stderr.splitlines() == [
        f"Error: changing service {item} from VDS-1 (30 GB disk) to VDS-2 (60 GB disk) changes "
        "the disk size, which the upstream cannot do automatically for a virtual server",
        "Do it by hand under a manual processing module:",
        f"  1. resellctl set-module {item} manual --until-task-closed",
        f"  2. resellctl services change-tariff {item} VDS-2",
        "  3. resize the server, then: resellctl tasks close TASK --note 'disk resized'",
        f"  4. (without --until-task-closed) resellctl set-module {item} vds-up",
    ]
    assert len(sim.requests) == sent  # not even a read
    assert len(show(run, item)["operations"]) == 1


def test_the_refusal_names_the_manual_module_to_add_when_there_is_none(run, sim,
                                                                       password_file):

    assert run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    item, _ = order_active(run, sim)
    r = run("services", "change-tariff", item, "VDS-2")
    assert r.exit_code == USAGE
    assert "  0. resellctl modules add manual --type manual" in r.stderr


def test_seed_story_vds1_to_vds2_under_the_manual_module_and_back(run, upstream):
    sim = upstream
    item, remote = order_active(run, sim)
    assert run("services", "change-tariff", item, "VDS-2").exit_code == USAGE

    # 1. Switch the service to the manual module.
    r = run("set-module", item, "manual")
    assert r.exit_code == SUCCESS, r
    assert r.stdout == f"service {item}: vds-up -> manual\n"
    # 2. The same change is now a task for staff; nothing goes upstream.
    sent = len(sim.requests)
    r = run("services", "change-tariff", item, "VDS-2")
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    assert row["status"] == "waiting"
    assert len(sim.requests) == sent
    [task] = open_tasks(run, item)
    assert task["type"] == "postchangepricelist" and task["id"] == int(row["task"])
    assert task["runningoperation"] == int(row["runningoperation"])
    assert f"resellctl tasks close {task['id']}" in r.stderr
    assert show(run, item)["pricelist"] == "VDS-1"  # not before the task is closed
    r = run("set-module", item, "vds-up")  # too early: the task is still open
    assert r.exit_code == USAGE
    assert f"Close its task when the work is done (`resellctl tasks close {task['id']}`)" \
        in r.stderr

    # Upstream events still reach the service while it sits under the manual module.
    sim.setparam(remote, hostname="big.example")
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert "1 applied" in r.stdout and "0 operations completed" in r.stdout
    assert show(run, item)["params"]["hostname"] == "big.example"
    assert op(run, row["runningoperation"])["status"] == "waiting"

    # 3. Staff resize the disk and close the task.
    r = run("tasks", "close", task["id"], "--note", "disk resized to 60 GB")
    assert r.exit_code == SUCCESS, r
    assert f"task {task['id']} closed" in r.stderr
    service = show(run, item)
    assert service["pricelist"] == "VDS-2"
    assert service["addons"] == {"disk": "60", "ram": "2048"}
    assert service["processingmodule"] == "manual"  # no --until-task-closed: it stays
    assert op(run, row["runningoperation"])["status"] == "done"
    [closed] = json.loads(run("tasks", "list", "--item", item, "--status", "closed",
                              "--json").stdout)[-1:]
    assert closed["id"] == task["id"] and closed["closedate"]
    assert closed["closedby"] == who() and closed["note"] == "disk resized to 60 GB"
    last = service["history"][-1]
    assert last["source"] == "task" and last["date"] == closed["closedate"]
    assert last["who"] == who()
    # Applied as the upstream's own change of that kind would be.
    assert last["message"] == (f"task {task['id']} (postchangepricelist) closed by "
                               f"{who()} (disk resized to 60 GB): tariff VDS-2; "
                               f"resources disk=60, ram=2048; operation {task['runningoperation']}"
                               " done")

    # 4. Back to the upstream module, which serves the service as before.
    r = run("set-module", item, "vds-up")
    assert r.exit_code == SUCCESS and r.stdout == f"service {item}: manual -> vds-up\n"
    complete(run, change(run, "suspend", item))
    service = show(run, item)
    assert service["status"] == 3 and service["processingmodule"] == "vds-up"
    modules = [h["message"] for h in service["history"] if h["source"] == "module"]
    assert modules == ["processing module vds-up -> manual", "processing module manual -> vds-up"]

    # The upstream never received a tariff change.
    assert "service.changepricelist" not in funcs(sim)


def test_until_task_closed_switches_back_when_the_task_is_closed(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    r = run("set-module", item, "manual", "--until-task-closed")
    assert r.exit_code == SUCCESS and r.stdout == f"service {item}: vds-up -> manual\n"
    assert (show(run, item)["history"][-1]["message"]
            == "processing module vds-up -> manual until its manual task is closed")
    row = change(run, "change-tariff", item, "VDS-2")
    r = run("tasks", "close", row["task"], "--note", "disk resized")
    assert r.exit_code == SUCCESS, r
    assert f"service {item} is back under module vds-up" in r.stderr
    service = show(run, item)
    assert service["processingmodule"] == "vds-up" and service["pricelist"] == "VDS-2"
    assert service["history"][-1]["message"] == (
        f"processing module manual -> vds-up (task {row['task']} closed)")
    # The override is spent: the next change goes upstream.
    complete(run, change(run, "set-param", item, "hostname=h.example"))
    assert "service.changepricelist" not in funcs(sim)
    assert funcs(sim)[-1] == "vds.edit"


def test_until_task_closed_switches_back_when_the_task_is_given_up_too(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    assert run("set-module", item, "manual", "--until-task-closed").exit_code == SUCCESS
    row = change(run, "change-tariff", item, "VDS-2")
    r = run("ops", "cancel", row["runningoperation"], "--force", "--yes")
    assert r.exit_code == SUCCESS, r
    service = show(run, item)
    assert service["processingmodule"] == "vds-up" and service["pricelist"] == "VDS-1"
    assert service["history"][-1]["message"] == (
        f"processing module manual -> vds-up (task {row['task']} closed)")


def test_set_module_checks(run, upstream, password_file):

    sim = upstream
    item, _ = order_active(run, sim)
    cases = [
        (("set-module", 99, "manual"), "no service 99"),
        (("set-module", item, "nosuch"), "no processing module 'nosuch'"),
        (("set-module", item, "vds-up"), "already under module 'vds-up'"),
        (("set-module", item, "vds-up", "--until-task-closed"), "already under"),
    ]
    # A second upstream whose tariffs were never imported cannot serve a vds.
    assert run("modules", "add", "other", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
    cases.append((("set-module", item, "other"), "lives upstream in module 'vds-up'"))
    sim.set_balance("0")
    r = run("order", "VDS-1")
    assert r.exit_code == ERROR
    unlinked = tsv(r.stdout)[0]["item"]
    cases.append((("set-module", unlinked, "other"), "lives upstream in module 'vds-up'"))
    cases.append((("set-module", unlinked, "manual", "--until-task-closed"), None))
    cases.append((("set-module", unlinked, "vds-up", "--until-task-closed"),
                  "--until-task-closed needs a manual module"))
    for args, words in cases:
        r = run(*args)
        if words is None:
            assert r.exit_code == SUCCESS, r
            continue
        refused(r, words)
    assert show(run, item)["processingmodule"] == "vds-up"


def test_set_module_waits_for_an_operation_upstream_unless_forced(run, upstream):
    sim = upstream
    item, _ = order_active(run, sim)
    row = change(run, "suspend", item)
    r = run("set-module", item, "manual")
    assert r.exit_code == USAGE
    assert f"operation {row['runningoperation']} (suspend)" in r.stderr and "--force" in r.stderr
    assert show(run, item)["processingmodule"] == "vds-up"
    r = run("set-module", item, "manual", "--force", "--yes")
    assert r.exit_code == SUCCESS and r.stdout == f"service {item}: vds-up -> manual\n"
    # The operation sent before the switch still completes by its upstream event.
    complete(run, row)
    assert show(run, item)["status"] == 3


def test_the_disk_compared_is_the_services_own(run, upstream):
    sim = upstream
    r = run("order", "VDS-1", "--addon", "disk=40", "--json")
    [created] = json.loads(r.stdout)
    assert run("checkevent").exit_code == SUCCESS
    assert show(run, created["item"])["addons"]["disk"] == "40"
    sent = len(sim.requests)
    # VDS-1-RAM keeps the tariff's 30 GB, but this server has 40: the change would shrink it.
    r = run("services", "change-tariff", created["item"], "VDS-1-RAM")
    assert r.exit_code == USAGE, r
    assert "from VDS-1 (40 GB disk) to VDS-1-RAM (30 GB disk)" in r.stderr
    assert len(sim.requests) == sent


def test_set_module_refuses_another_upstream_even_before_the_order_went_through(
        run, upstream, tmp_path):
    """A service lives upstream where its tariff is sold. Moved to another billmanager module
    while its order waited for funds, the order still went to its own upstream, and every
    later change would have gone to the other one, naming an item id it does not hold."""
    sim = upstream
    sim.add_account("second@example.net", "second-Pa55word", balance="100.00")
    second = tmp_path / "second.pw"
    second.write_text("second-Pa55word\n")
    assert run("modules", "add", "other", "--type", "billmanager", "--url", sim.server.url,
               "--username", "second@example.net", "--password-file", second).exit_code == SUCCESS
    assert run("tariffs", "import", "other").exit_code == SUCCESS
    sim.set_balance("0")
    r = run("order", "1")  # VDS-1 of vds-up, by id: both modules have a VDS-1
    assert r.exit_code == ERROR, r
    item = tsv(r.stdout)[0]["item"]
    r = run("set-module", item, "other")
    assert r.exit_code == USAGE, r
    assert f"service {item} lives upstream in module 'vds-up', not 'other'" in r.stderr
    assert show(run, item)["processingmodule"] == "vds-up"


def test_a_task_of_a_service_deleted_upstream_meanwhile_does_not_bring_it_back(run, upstream):
    """Staff's suspension waits under the manual module when the upstream deletes the service:
    closing the task is refused (the service stays deleted), and the operation is given up."""
    item, remote = order_active(run, upstream)
    assert run("set-module", item, "manual").exit_code == SUCCESS
    row = change(run, "suspend", item)
    upstream.inject_event(raw_event(upstream, type=scalar("close"), item=scalar(remote),
                                    remoteid=None, param=None))
    assert run("checkevent").exit_code == SUCCESS
    assert show(run, item)["status"] == 4
    r = run("tasks", "close", row["task"])
    assert r.exit_code == USAGE, r
    refused(r, f"service {item} was deleted meanwhile: task {row['task']} (postsuspend)")
    assert f"resellctl ops cancel {row['runningoperation']} --force" in r.stderr
    assert show(run, item)["status"] == 4
    assert [t["id"] for t in open_tasks(run, item)] == [int(row["task"])]
    r = run("ops", "cancel", row["runningoperation"], "--force", "--yes")
    assert r.exit_code == SUCCESS, r
    assert show(run, item)["status"] == 4 and open_tasks(run, item) == []

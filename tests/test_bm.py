"""The whole reselling story against a real BILLmanager's documented API, as the embedded
simulator plays one (`sim serve --api bm6|bm5`), over real HTTP: no event feed, sessions, v2
orders, and services kept in step by listing and comparing (checkevent polls)."""

import json
from decimal import Decimal

import pytest

from helpers import (ERROR, PASSWORD, SUCCESS, TEMPFAIL, USERNAME, checkevent, op, refused, sent,
                     show, tsv)
from resellctl.sim import Simulator, serve


@pytest.fixture
def bm(run, password_file, request):
    """A simulated BILLmanager (bm6 unless the test is parametrised with ``api``), the module
    vds-up on it added as the README says (its dialect asked), tariffs imported."""
    api = getattr(request, "param", "bm6")
    state = Simulator(username=USERNAME, password=PASSWORD, balance="100.00", api=api)
    with serve(state) as server:
        state.server = server
        r = run("modules", "add", "vds-up", "--type", "billmanager", "--url", server.url,
                "--username", USERNAME, "--password-file", password_file, "--min-balance", "20",
                *(["--api", api] if api == "bm5" else []))
        assert r.exit_code == SUCCESS, r
        assert r.stderr.endswith(f"module vds-up (billmanager, dialect {api}) added\n"), r
        assert run("modules", "add", "manual", "--type", "manual").exit_code == SUCCESS
        assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
        yield state


def ordered(run, *args):
    r = run("order", "VDS-1", "--client", "acme", "--json", *args)
    assert r.exit_code == SUCCESS, r
    return json.loads(r.stdout)


def test_detection_says_events_or_bm6_and_check_reports_the_account(run, bm):
    r = run("modules", "list", "--json")
    assert [(m["name"], m["api"]) for m in json.loads(r.stdout)] == [("vds-up", "bm6"),
                                                                     ("manual", None)]
    bm.add_foreign("11", {"ip": "192.0.2.50"})
    before = bm.password_requests()
    r = run("modules", "check", "vds-up", "--json")
    assert r.exit_code == SUCCESS, r
    # The dialect confirmed over the session its login opened: the password crossed once.
    assert bm.password_requests() == before + 1
    report = json.loads(r.stdout)
    assert (report["api"], report["detected"], report["balance"], report["currency"]) == (
        "bm6", "bm6", "100.00", "EUR")
    assert report["services"] == [{"itemtype": "vds", "upstream": 1, "known": 0}]
    r = run("modules", "check", "vds-up")
    assert r.stdout.splitlines()[1] == "  vds: 1 upstream, 0 in the books"


def test_a_wrong_password_is_found_when_the_module_is_added(run, bm, tmp_path):
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-it\n")
    wrong.chmod(0o600)
    r = run("modules", "add", "other", "--type", "billmanager", "--url", bm.server.url,
            "--username", USERNAME, "--password-file", wrong)
    assert r.exit_code == ERROR, r
    assert "login refused" in r.stderr
    assert "other" not in run("modules", "list").stdout


def test_the_whole_story(run, bm):
    """Order, poll to active, upstream changes of every kind, each applied once and in the
    history, and the books never a step behind the upstream."""
    created = ordered(run, "--quantity", "3", "--param", "ostempl=debian-12")
    assert [c["status"] for c in created] == ["waiting"] * 3
    [order, *_] = sent(bm, "v2.vds.order.param")
    assert (order["pricelist"], order["order_period"], order["skipbasket"]) == ("11", "1", "on")
    assert "period" not in order and order["ostempl"] == "debian-12"
    assert bm.balance() == Decimal("85.00")

    summary = checkevent(run)
    assert (summary["applied"], summary["completed"], summary["polled"]) == (3, 3, True)
    services = [show(run, c["item"]) for c in created]
    assert [s["status"] for s in services] == [2, 2, 2]
    first = services[0]
    upstream = bm.items[first["upstream_id"]]
    assert first["params"]["ip"] == upstream.params["ip"]
    assert first["expiredate"] == upstream.expiredate
    assert [o["status"] for o in first["operations"]] == ["done"]
    assert [t["status"] for t in first["tasks"]] == ["closed"]

    # What happens upstream on its own is seen at the next run.
    remote = first["upstream_id"]
    bm.suspend(remote, msg="abuse")
    bm.setparam(remote, ip="192.0.2.99")
    bm.set_expiredate(remote, "2031-01-31")
    summary = checkevent(run)
    assert summary["applied"] == 3 and summary["completed"] == 0
    service = show(run, first["id"])
    assert (service["status"], service["params"]["ip"], service["expiredate"]) == (
        3, "192.0.2.99", "2031-01-31")
    polled = [h["message"] for h in service["history"] if h["source"] == "poll"]
    assert polled[-3:] == ["suspend (seen upstream): status 2 -> 3",
                           "prolong (seen upstream): expires 2031-01-31",
                           "setparam (seen upstream): ip=192.0.2.99"]
    # Nothing changed: nothing applied, nothing written again.
    assert checkevent(run)["applied"] == 0
    assert len(show(run, first["id"])["history"]) == len(service["history"])

    bm.resume(remote)
    bm.changepricelist(remote, "12", check_disk=False)  # upstream staff may change the disk
    summary = checkevent(run)
    service = show(run, first["id"])
    assert (service["status"], service["pricelist"], service["addons"]["disk"]) == (
        2, "VDS-2", "60")
    bm.delete(remote)
    checkevent(run)
    assert show(run, first["id"])["status"] == 4


def test_changes_asked_for_complete_when_polling_sees_them(run, bm):
    [created] = ordered(run)
    checkevent(run)
    item = created["item"]
    for args, kind in ((["prolong", item, "--period", "3"], "prolong"),
                       (["suspend", item], "suspend"), (["resume", item], "resume"),
                       (["set-param", item, "hostname=www.example"], "setparam"),
                       (["change-tariff", item, "VDS-1-RAM"], "changepricelist")):
        r = run("services", *args)
        assert r.exit_code == SUCCESS, r
        [row] = tsv(r.stdout)
        assert row["status"] == "waiting", (kind, row)
        summary = checkevent(run)
        assert summary["completed"] == 1, (kind, summary)
        assert op(run, row["runningoperation"])["status"] == "done"
    service = show(run, item)
    assert (service["status"], service["pricelist"], service["params"]["hostname"]) == (
        2, "VDS-1-RAM", "www.example")


def test_a_service_that_vanishes_is_missing_not_closed(run, bm):
    [created] = ordered(run)
    checkevent(run)
    remote = show(run, created["item"])["upstream_id"]
    bm.vanish(remote)
    r = run("checkevent", "-q")
    assert r.exit_code == SUCCESS and r.stdout == "", r
    assert (f"service {created['item']} is missing upstream: its item is not there any more"
            in r.stderr)
    service = show(run, created["item"])
    assert service["status"] == 2 and service["missing"]
    assert tsv(run("services", "list", "--missing").stdout)[0]["id"] == str(created["item"])
    # Reported once, when it is first found; still counted.
    r = run("checkevent", "-q")
    assert "missing upstream" not in r.stderr
    assert checkevent(run)["missing"] == 1


def test_foreign_items_are_counted_and_imported_on_request(run, bm):
    foreign = bm.add_foreign("11", {"ip": "192.0.2.50", "domain": "old.example"},
                             expiredate="2027-06-30")
    summary = checkevent(run)
    assert summary["foreign"] == 1 and summary["applied"] == 0
    sent_before = len(sent(bm, "v2.vds.order.param"))
    r = run("services", "import", "vds-up", "--client", "legacy", "--json")
    assert r.exit_code == SUCCESS, r
    [imported] = json.loads(r.stdout)
    assert imported["upstream_id"] == foreign and imported["pricelist"] == "VDS-1"
    service = show(run, imported["item"])
    assert (service["client"], service["status"], service["expiredate"]) == (
        "legacy", 2, "2027-06-30")
    assert service["params"]["domain"] == "old.example" and service["addons"]["disk"] == "30"
    assert "imported from upstream item" in service["history"][0]["message"]
    assert service["operations"] == [] and service["tasks"] == []
    assert len(sent(bm, "v2.vds.order.param")) == sent_before  # nothing ordered
    assert bm.balance() == Decimal("100.00")
    assert checkevent(run)["foreign"] == 0
    r = run("services", "import", "vds-up")
    assert r.exit_code == SUCCESS and "0 services imported" in r.stderr


def test_a_lost_order_answer_makes_one_service_and_one_charge(run, bm):
    """The upstream made the service, the answer was lost: the next try finds the item by
    its remoteid instead of ordering a second one."""
    bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
    [created] = ordered(run)
    assert created["status"] == "waiting"
    assert len(sent(bm, "v2.vds.order.param")) == 1
    assert len(bm.items) == 1 and bm.balance() == Decimal("95.00")
    service = show(run, created["item"])
    assert service["upstream_id"] == next(iter(bm.items))
    assert any("carries this order's remoteid" in h["message"] for h in service["history"])
    checkevent(run)
    assert show(run, created["item"])["status"] == 2


def test_a_lost_order_answer_without_remoteids_adopts_the_one_new_item(run, password_file):
    state = Simulator(username=USERNAME, password=PASSWORD, balance="100.00", api="bm6",
                      quirks=("edit-no-remoteid",))
    with serve(state) as server:
        assert run("modules", "add", "vds-up", "--type", "billmanager", "--url", server.url,
                   "--username", USERNAME, "--password-file", password_file).exit_code == SUCCESS
        assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
        state.fault("drop_after_commit", func="v2.vds.order.param", count=1)
        [created] = ordered(run)
        assert created["status"] == "waiting" and len(state.items) == 1
        assert any("the one item of tariff VDS-1 made since this order was sent" in h["message"]
                   for h in show(run, created["item"])["history"])
        # Two candidates: nothing is sent, the admin is told how to choose.
        state.add_foreign("11")
        state.add_foreign("11")
        state.fault("drop_after_commit", func="v2.vds.order.param", count=1)
        r = run("order", "VDS-1", "--json")
        assert r.exit_code == ERROR, r
        assert "several upstream items could be it" in r.stderr
        [second] = json.loads(r.stdout)
        assert len(state.items) == 4  # ours, the two foreign ones, and the one just made
        assert len(sent(state, "v2.vds.order.param")) == 2  # none sent again
        made = max(state.items, key=int)
        assert f"resellctl services link {second['item']} UPSTREAM_ID" in r.stderr
        r = run("services", "link", second["item"], made)
        assert r.exit_code == SUCCESS, r
        assert op(run, second["runningoperation"])["status"] == "waiting"
        service = show(run, second["item"])
        assert service["upstream_id"] == made
        assert state.items[made].remoteid == service["remoteid"]
        checkevent(run)
        assert op(run, second["runningoperation"])["status"] == "done"


def test_the_password_crosses_the_wire_once_a_run(run, bm):
    ordered(run, "--quantity", "3")
    start = len(bm.requests)
    for _ in range(2):
        before = bm.password_requests()
        assert checkevent(run)["error"] is None
        assert bm.password_requests() == before + 1
    runs = bm.requests[start:]
    assert [q["func"] for q in runs if q["carried_password"]] == ["auth", "auth"]
    assert len(runs) > 6  # lists, forms, balances: all with the session alone
    assert all("password" not in q["params"] for q in bm.requests)  # the log keeps none


def test_a_session_that_ends_in_the_middle_of_a_run_is_renewed_once(run, bm):
    import itertools

    [created] = ordered(run)
    # The upstream's clock jumps two hours after the run's first calls: the session it
    # opened ends under it, as one ends after an hour idle.
    calls, real = itertools.count(), bm.sessions.clock
    bm.sessions.clock = lambda: real() + (7200 if next(calls) >= 3 else 0)
    before = bm.password_requests()
    summary = checkevent(run)
    assert (summary["error"], summary["completed"]) == (None, 1)
    assert bm.password_requests() == before + 2  # the login, and the one renewal
    assert op(run, created["runningoperation"])["status"] == "done"


def test_a_password_refused_on_renewal_is_a_credentials_failure(run, bm):
    ordered(run)
    bm.accounts[USERNAME].password = "changed-upstream"
    r = run("checkevent")
    assert r.exit_code == ERROR, r
    assert "login refused" in r.stderr
    assert "resellctl modules edit vds-up --username USER --password-file FILE" in r.stderr


def test_a_balance_below_the_minimum_warns(run, bm):
    bm.set_balance("1234.50")  # shown as "1 234.50 EUR"
    summary = checkevent(run)
    assert (summary["balance"], summary["low_balance"]) == ("1234.50", False)
    bm.set_balance("12.00")
    r = run("checkevent")
    assert r.exit_code == SUCCESS
    assert "balance 12.00 EUR is below the minimum 20" in r.stderr


def test_dry_run_shows_the_differences_and_changes_nothing(run, bm):
    [created] = ordered(run)
    checkevent(run)
    remote = show(run, created["item"])["upstream_id"]
    bm.suspend(remote)
    history = show(run, created["item"])["history"]
    r = run("checkevent", "--dry-run", "--json")
    assert r.exit_code == SUCCESS, r
    assert json.loads(r.stdout) == [{"module": "vds-up", "item": created["item"],
                                     "upstream_item": remote, "type": "suspend", "status": 3}]
    assert "nothing was changed (--dry-run)" in r.stderr
    assert show(run, created["item"])["history"] == history
    assert show(run, created["item"])["status"] == 2


@pytest.mark.parametrize("bm", ["bm5"], indirect=True)
def test_bm5_orders_with_the_old_function_and_period(run, bm):
    [created] = ordered(run, "--period", "3")
    assert sent(bm, "v2.vds.order.param") == []
    [order] = sent(bm, "vds.order.param")
    assert order["period"] == "3" and "order_period" not in order
    checkevent(run)
    assert show(run, created["item"])["status"] == 2


def test_an_order_search_among_too_many_candidates_reads_none_and_sends_nothing(
        run, bm, monkeypatch):
    """An account full of new items of the same tariff, none linked (say, ordered in the panel
    before resellctl came): reading each to find the one order would not end in time."""
    from resellctl.upstream import bm as bm_client

    monkeypatch.setattr(bm_client, "MAX_CANDIDATES", 3)
    for _ in range(4):
        bm.add_foreign("11")
    bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
    reads = len(sent(bm, "vds.edit"))
    r = run("order", "VDS-1", "--json")
    assert r.exit_code == ERROR, r
    assert "several upstream items could be it" in r.stderr
    assert len(sent(bm, "vds.edit")) == reads  # none read
    assert len(sent(bm, "v2.vds.order.param")) == 1  # none sent again


def test_a_tariff_not_imported_is_said_not_written_into_the_history_at_every_run(run, bm):
    from resellctl.sim.tariffs import _tariff

    [created] = ordered(run)
    checkevent(run)
    remote = show(run, created["item"])["upstream_id"]
    bm.tariffs["14"] = _tariff(14, "VDS-3", "vds", {1: "12.00"}, (109, "disk", 90, "GB"))
    bm.changepricelist(remote, "14", check_disk=False)
    history = show(run, created["item"])["history"]
    for _ in range(2):
        r = run("checkevent")
        assert r.exit_code == SUCCESS, r
        assert (f"service {created['item']}: its upstream item shows tariff 14, which is not "
                "imported here; run: resellctl tariffs import vds-up") in r.stderr
    assert show(run, created["item"])["history"] == history
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
    checkevent(run)
    service = show(run, created["item"])
    assert (service["pricelist"], service["addons"]["disk"]) == ("VDS-3", "90")


def test_max_events_applies_a_services_changes_together_and_the_rest_next_run(run, bm):
    created = ordered(run, "--quantity", "2")
    checkevent(run)
    remotes = [show(run, c["item"])["upstream_id"] for c in created]
    for remote in remotes:
        bm.suspend(remote)
        bm.setparam(remote, note="moved")  # seen in the form only, not in the list
    first = checkevent(run, "--max-events", "3")
    assert (first["applied"], first["more"]) == (2, True)  # the first service's two
    second = checkevent(run)
    assert second["applied"] == 2
    for c in created:
        service = show(run, c["item"])
        assert (service["status"], service["params"]["note"]) == (3, "moved")


def test_a_form_of_another_item_than_asked_is_never_taken_for_it(run, bm, monkeypatch):
    """An upstream (a caching proxy, a bug) that answers one item's form with another's: the
    other's state would be applied to the wrong service, or the wrong server adopted."""
    from resellctl.sim import bm as sim_bm

    created = ordered(run, "--quantity", "2")
    checkevent(run)
    first, second = (show(run, c["item"]) for c in created)
    foreign = bm.add_foreign("11", {"ip": "192.0.2.50"})
    answered = {first["upstream_id"]: second["upstream_id"], foreign: second["upstream_id"]}
    real = sim_bm._form
    monkeypatch.setattr(sim_bm, "_form", lambda sim, item, func: real(
        sim, sim.items[answered.get(item.id, item.id)], func))
    bm.suspend(second["upstream_id"])
    bm.set_expiredate(first["upstream_id"], "2030-01-31")  # the first's row differs: read
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert (f"service {first['id']}: its upstream item {first['upstream_id']} could not be "
            f"read (vds.edit on 127.0.0.1:{bm.server.port}: asked for item "
            f"{first['upstream_id']}, the upstream answered with item "
            f"{second['upstream_id']}); compared next run") in r.stderr
    assert [show(run, c["item"])["status"] for c in created] == [2, 3]
    assert show(run, first["id"])["history"] == first["history"]
    r = run("services", "import", "vds-up", "--upstream-id", foreign)
    assert r.exit_code == ERROR, r
    assert "the upstream answered with item" in r.stderr
    assert tsv(run("services", "list").stdout)[-1]["id"] == str(second["id"])


def test_an_order_whose_answer_was_lost_is_never_imported_or_linked_to_another_service(run, bm):
    """The item a lost order made carries that order's remoteid: imported as a service of its
    own (or linked to another), the order would find nothing and be made, and charged, again."""
    lost = []
    for _ in range(2):
        bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
        bm.fault("500", func="vds", count=9)  # and the search for it fails too
        [created] = json.loads(run("order", "VDS-1", "--json").stdout)
        assert created["status"] == "failed", created
        bm.faults.clear()
        lost.append(created)
    made = list(bm.items)
    r = run("services", "import", "vds-up")
    assert r.exit_code == SUCCESS, r
    for created, upstream_id in zip(lost, made):
        assert (f"passed over: upstream item {upstream_id}: it carries the remoteid of service "
                f"{created['item']}, whose order made it (resellctl services link "
                f"{created['item']} {upstream_id})") in r.stderr
    assert "0 services imported" in r.stderr
    refused(run("services", "link", lost[1]["item"], made[0]),
            f"upstream item {made[0]} carries the remoteid of service {lost[0]['item']}")
    for created, upstream_id in zip(lost, made):
        r = run("ops", "start", created["runningoperation"])
        assert r.exit_code == SUCCESS, r
        assert show(run, created["item"])["upstream_id"] == upstream_id
    assert len(sent(bm, "v2.vds.order.param")) == 2 and len(bm.items) == 2
    assert bm.balance() == Decimal("90.00")


def test_a_service_is_never_linked_to_a_deleted_item(run, bm):
    """A link is not undone by hand: linked to a deleted item (a typo), the service would be
    closed by the next checkevent."""
    gone = bm.add_foreign("11")
    bm.delete(gone)
    bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
    bm.fault("500", func="vds", count=9)
    [lost] = json.loads(run("order", "VDS-1", "--json").stdout)
    bm.faults.clear()
    refused(run("services", "link", lost["item"], gone),
            f"upstream item {gone} is deleted")
    assert show(run, lost["item"])["upstream_id"] is None


def test_a_row_of_another_types_list_with_a_services_id_is_not_that_service(
        run, bm, monkeypatch):
    """The vhost list shows a row with the id of a vds of the books: taken for it, the vds was
    found missing upstream (its vhost form is none), or given the vhost's state."""
    from resellctl.sim import bm as sim_bm

    [created] = ordered(run)
    checkevent(run)
    service = show(run, created["item"])
    hosting = bm.add_foreign("21")
    bm.suspend(hosting)
    real = sim_bm._row
    monkeypatch.setattr(sim_bm, "_row", lambda sim, item: {
        **real(sim, item), **({"id": {"$": service["upstream_id"]}} if item.id == hosting
                              else {})})
    summary = checkevent(run)
    assert (summary["applied"], summary["missing"], summary["foreign"]) == (0, 0, 1)
    assert show(run, created["item"]) == service


def test_a_service_missing_upstream_that_is_listed_again_is_no_longer_missing(run, bm):
    """Back in the list (restored upstream), it stayed marked missing until the rotation read
    its form: a week of runs, with `services list --missing` and status naming a problem."""
    bm.set_balance("1000.00")
    created = ordered(run, "--quantity", "25")  # more than a run's rotation reads
    checkevent(run)
    last = show(run, created[-1]["item"])
    item = bm.items[last["upstream_id"]]
    bm.vanish(item.id)
    assert checkevent(run)["new_missing"] == [last["id"]]
    bm.items[item.id] = item
    assert checkevent(run)["missing"] == 0
    service = show(run, last["id"])
    assert service["missing"] is None
    assert service["history"][-1]["message"] == (
        f"upstream item {item.id} is there again: no longer missing upstream")
    assert run("services", "list", "--missing", "-q").stdout == ""


def test_a_row_listed_twice_is_one_candidate_for_an_order_whose_answer_was_lost(
        run, bm, monkeypatch):
    """A list that shows a row twice (or again on the next page, the list having moved between
    the two): the item the order made was two candidates, and the order failed as ambiguous."""
    from resellctl.sim import bm as sim_bm

    real = sim_bm.item_list

    def twice(sim, account, form):
        doc = real(sim, account, form, itemtype="vds")
        if "elem" in doc:
            doc["elem"] = doc["elem"] * 2
        return doc
    monkeypatch.setitem(sim_bm.FUNCTIONS, "vds", twice)
    bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
    [created] = ordered(run)
    assert created["status"] == "waiting"
    assert show(run, created["item"])["upstream_id"] == next(iter(bm.items))
    assert len(bm.items) == 1 and bm.balance() == Decimal("95.00")
    assert checkevent(run)["foreign"] == 0


def test_a_tariff_of_another_item_type_upstream_is_said_not_applied(run, bm):
    """A vds whose form shows a hosting tariff (an upstream's mistake): applied, the books made
    the vds a hosting service with a hosting's resources."""
    [created] = ordered(run)
    checkevent(run)
    service = show(run, created["item"])
    bm.items[service["upstream_id"]].pricelist = "21"  # Hosting-Start, of vhost
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert (f"service {created['item']}: its upstream item shows tariff 21, which sells vhost, "
            "not vds: not applied") in r.stderr
    assert show(run, created["item"]) == service


def test_an_expiry_moved_back_completes_no_renewal(run, bm, monkeypatch):
    """An upstream that takes a renewal and applies it later, and meanwhile moves the expiry
    back: the books follow the expiry, and the renewal waits until the upstream shows it."""
    [created] = ordered(run)
    checkevent(run)
    item = created["item"]
    remote, before = (show(run, item)[k] for k in ("upstream_id", "expiredate"))
    taken = []
    monkeypatch.setattr(Simulator, "prolong",
                        lambda self, item_id, period: taken.append(item_id) or before)
    r = run("services", "prolong", item, "--period", "1")
    assert r.exit_code == SUCCESS, r
    [row] = tsv(r.stdout)
    assert row["status"] == "waiting" and taken == [remote]
    earlier = "2026-01-15"
    bm.set_expiredate(remote, earlier)
    summary = checkevent(run)
    assert summary["completed"] == 0
    assert show(run, item)["expiredate"] == earlier
    assert op(run, row["runningoperation"])["status"] == "waiting"
    # The upstream applies it at last: past the expiry it had before the renewal was sent.
    bm.set_expiredate(remote, "2099-01-31")
    assert checkevent(run)["completed"] == 1
    assert op(run, row["runningoperation"])["status"] == "done"


def test_the_search_for_a_lost_order_is_retried_in_one_layer(run, bm, monkeypatch):
    """The search runs inside the order's own retries: its calls are not retried again inside
    them, and the error says once how many attempts were made."""
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "3")
    bm.fault("drop_after_commit", func="v2.vds.order.param", count=1)
    bm.fault("500", func="vds", count=100)
    start = len(bm.requests)
    r = run("order", "VDS-1", "--json")
    [created] = json.loads(r.stdout)
    assert created["status"] == "failed", created
    lists = [q for q in bm.requests[start:] if q["func"] == "vds"]
    assert len(lists) == 2  # the second and third attempts search; the first was the order
    assert r.stderr.count("gave up after") == 1, r.stderr
    assert "gave up after 3 attempts" in r.stderr


def test_a_malformed_form_is_its_services_problem_until_there_are_too_many(run, bm,
                                                                           monkeypatch):
    """One service's form of millions of fields (or of another shape) holds up no other
    service; past a few such forms in one run, the upstream is broken and the run fails."""
    from resellctl.poll import MALFORMED_PER_RUN
    from resellctl.sim import bm as sim_bm

    created = ordered(run, "--quantity", MALFORMED_PER_RUN + 2)
    checkevent(run)
    services = [show(run, c["item"]) for c in created]
    spoilt = set()
    real = sim_bm._form

    def form(sim, item, func):
        doc = real(sim, item, func)
        if item.id in spoilt:
            doc.update((f"field{n}", {"$": "x"}) for n in range(20_000))
        return doc

    monkeypatch.setattr(sim_bm, "_form", form)
    for service in services:
        bm.set_expiredate(service["upstream_id"], "2030-01-31")  # each row differs: read
    first = services[0]
    spoilt.add(first["upstream_id"])
    r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert (f"service {first['id']}: its upstream item {first['upstream_id']} could not be "
            "read (vds.edit on ") in r.stderr
    assert "more than 10,000" in r.stderr
    assert [show(run, s["id"])["expiredate"] for s in services] == (
        [first["expiredate"]] + ["2030-01-31"] * (len(services) - 1))

    for service in services:
        bm.set_expiredate(service["upstream_id"], "2031-01-31")
    spoilt.update(s["upstream_id"] for s in services)
    r = run("checkevent")
    assert r.exit_code == TEMPFAIL, r
    assert "more than 10,000" in r.stdout + r.stderr


def test_an_item_deleted_upstream_is_never_imported(run, bm):
    gone = bm.add_foreign("11", {"ip": "192.0.2.51"})
    bm.delete(gone)
    for args in ([], ["--upstream-id", gone]):
        r = run("services", "import", "vds-up", *args)
        assert f"upstream item {gone}: deleted upstream" in r.stderr, r
        assert "0 services imported" in r.stderr, r
    assert json.loads(run("services", "list", "--json").stdout) == []

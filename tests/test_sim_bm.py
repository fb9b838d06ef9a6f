"""The embedded selling BILLmanager acting as a real BILLmanager 6 or 5 (the bm6 and bm5
dialects of docs/protocol.md), spoken to over real HTTP."""

import re
from datetime import date
from decimal import Decimal

import pytest
import requests
from click.testing import CliRunner

from helpers import COLON_PASSWORD, SUCCESS, USAGE, USERNAME, sim_serve
from resellctl.bmdoc import as_list, text
from resellctl.cli import cli
from resellctl.cli import simserve as sim_cli
from resellctl.sim import Simulator, dialects, serve
from resellctl.sim.tariffs import _tariff, add_months

NBSP = "\u00a0"
OWN_FIELDS = {"elid", "id", "pricelist", "expiredate", "status", "remoteid", "period",
              "createdate", "datacenter", "autoprolong"}


@pytest.fixture
def start():
    """Start a simulator (bm6 unless ``api`` says otherwise) on a free loopback port."""
    servers = []

    def start(**settings):
        sim = Simulator(username=USERNAME, password=COLON_PASSWORD, **{"api": "bm6", **settings})
        sim.server = serve(sim)
        servers.append(sim.server)
        return sim

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sim(start):
    return start()


class BmClient:
    """An account's calls as a bm client makes them: one login, then ``auth=<session id>``."""

    def __init__(self, sim):
        self.url = sim.server.url
        self.http = requests.Session()
        self.session = None

    def post(self, func, **fields):
        """POST one call with exactly these fields; the answer's ``doc``."""
        answer = self.http.post(self.url, data={"func": func, "out": "json", **fields},
                                timeout=10)
        assert answer.status_code == 200
        return answer.json()["doc"]

    def login(self, password=COLON_PASSWORD):
        doc = self.post("auth", username=USERNAME, password=password)
        self.session = doc.get("auth", {}).get("$id")
        return doc

    def __call__(self, func, **fields):
        return self.post(func, auth=self.session, **fields)


@pytest.fixture
def bm_client(sim):
    bm_client = BmClient(sim)
    bm_client.login()
    yield bm_client
    bm_client.http.close()


def refusal(doc):
    """(type, object) of an error answer."""
    return doc["error"]["$type"], doc["error"]["$object"]


def order_v2(bm_client, remoteid="17", pricelist="11", order_period="1", **fields):
    """Order through bm6's v2 form; the new upstream item id."""
    doc = bm_client("v2.vds.order.param", pricelist=pricelist, order_period=order_period,
                    remoteid=remoteid, sok="ok", skipbasket="on", **fields)
    return text(doc["id"])


def rows(bm_client, itemtype="vds", **paging):
    return as_list(bm_client(itemtype, **paging).get("elem"))


def add_domain_tariff(sim):
    sim.tariffs["31"] = _tariff(31, "Domain-COM", "domain", {12: "10.00"})


# --- sessions --------------------------------------------------------------------------------

def test_a_login_opens_a_session_that_later_calls_use_and_the_password_crosses_once(sim):
    bm_client = BmClient(sim)
    doc = bm_client.login()
    session = doc["auth"]["$id"]
    assert doc == {"auth": {"$id": session, "$": session, "$level": "16"}}
    for _ in range(3):
        assert text(bm_client("dashboard.info")["elem"][0]["balance"]) == "100.00 EUR"
    order_v2(bm_client)
    assert len(sim.requests) == 5 and sim.password_requests() == 1
    assert [r["session"] for r in sim.requests] == [False, True, True, True, True]
    assert COLON_PASSWORD not in repr(sim.requests) and "s3cret" not in repr(sim.requests)
    assert session not in repr(sim.requests)


def test_authinfo_still_works_and_each_such_request_carries_the_password(sim):
    bm_client = BmClient(sim)
    assert bm_client.post("vds", authinfo=f"{USERNAME}:{COLON_PASSWORD}")["p_elems"] == {"$": "0"}
    assert refusal(bm_client.post("vds", authinfo=f"{USERNAME}:wrong")) == ("auth", "badpassword")
    # a GET is refused, but its password crossed the wire all the same, and is not logged
    get = requests.get(f"{sim.server.url}?func=auth&username={USERNAME}&password=gotcha",
                       timeout=5)
    assert refusal(get.json()["doc"])[0] == "access"
    assert sim.password_requests() == 3
    assert "gotcha" not in repr(sim.requests) and "s3cret" not in repr(sim.requests)


def test_a_bad_password_answers_auth_badpassword(sim):
    bm_client = BmClient(sim)
    assert refusal(bm_client.login(password="wrong")) == ("auth", "badpassword")
    assert refusal(bm_client.post("auth", username="nobody@example.net",
                                  password=COLON_PASSWORD)) == ("auth", "badpassword")
    assert refusal(bm_client.post("dashboard.info")) == ("auth", "badpassword")
    assert len(sim.sessions) == 0 and sim.password_requests() == 2


def test_a_session_ends_after_an_hour_without_requests_and_each_request_restarts_it(sim):
    now = [1000.0]
    sim.sessions.clock = lambda: now[0]
    bm_client = BmClient(sim)
    bm_client.login()
    for _ in range(3):
        now[0] += 3599
        assert "elem" in bm_client("dashboard.info")
    now[0] += 3601
    assert refusal(bm_client("dashboard.info")) == ("auth", "")
    # ended means ended: the clock turning back does not revive it
    now[0] -= 3601
    assert refusal(bm_client("dashboard.info"))[0] == "auth"
    bm_client.login()
    assert "elem" in bm_client("dashboard.info")


def test_the_idle_time_is_settable(start):
    sim = start(session_idle=30)
    now = [0.0]
    sim.sessions.clock = lambda: now[0]
    bm_client = BmClient(sim)
    bm_client.login()
    now[0] = 31
    assert refusal(bm_client("vds"))[0] == "auth"
    with pytest.raises(ValueError):
        Simulator(api="bm6", session_idle=0)


def test_the_upstream_ends_every_session_at_once(sim, bm_client):
    other = BmClient(sim)
    other.login()
    sim.expire_sessions()
    assert refusal(bm_client("vds")) == ("auth", "") and refusal(other("vds")) == ("auth", "")
    bm_client.login()
    assert "p_elems" in bm_client("vds")
    assert refusal(bm_client.post("vds", auth="not-a-session")) == ("auth", "")


# --- what a customer-level account cannot call -----------------------------------------------

@pytest.mark.parametrize("api", ["bm6", "bm5"])
def test_there_is_no_event_feed_and_no_subaccount(start, api):
    sim = start(api=api)
    bm_client = BmClient(sim)
    bm_client.login()
    # how a client tells the dialects apart: this answer has neither elem nor more
    probe = bm_client("item.event.list", after="0", limit="1")
    assert refusal(probe) == ("missing", "func") and "elem" not in probe and "more" not in probe
    assert refusal(bm_client("item.event.ack", upto="1")) == ("missing", "func")
    assert refusal(bm_client("subaccount")) == ("access", "subaccount")
    # with bad credentials the same probe is a credentials failure
    assert refusal(bm_client.post("item.event.list", authinfo=f"{USERNAME}:wrong", after="0",
                                  limit="1"))[0] == "auth"


def test_an_events_simulator_answers_the_same_probe_with_a_feed(start):
    bm_client = BmClient(start(api="events"))
    probe = bm_client.post("item.event.list", authinfo=f"{USERNAME}:{COLON_PASSWORD}", after="0",
                           limit="1")
    assert probe == {"more": {"$": "off"}, "elem": []}


# --- ordering --------------------------------------------------------------------------------

def test_bm6_orders_a_server_through_v2_and_charges_at_once(sim, bm_client):
    before = date.today().isoformat()
    item = order_v2(bm_client, order_period="12", datacenter="2", ostempl="debian-12",
                    addon_102="2048")
    assert item == "4201" and sim.balance() == Decimal("50.00")
    ordered = sim.items[item]
    assert (ordered.status, ordered.period, ordered.remoteid, ordered.datacenter) == (
        5, 12, "17", "2")
    assert ordered.params == {"ostempl": "debian-12"}
    assert ordered.addons == {"disk": "30", "ram": "2048"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ordered.createdate)
    assert ordered.createdate[:10] >= before


def test_bm6_refuses_the_old_order_form_for_servers_and_v2_for_domains(sim, bm_client):
    old = bm_client("vds.order.param", pricelist="11", period="1", remoteid="17", sok="ok")
    assert refusal(old) == ("missing", "func")
    assert refusal(bm_client("v2.vds.order.param", pricelist="11", period="1",
                             remoteid="17")) == ("missed", "order_period")
    assert refusal(bm_client("v2.vds.order.param", pricelist="11", order_period="6",
                             remoteid="17")) == ("value", "order_period")
    add_domain_tariff(sim)
    assert refusal(bm_client("v2.domain.order.param", pricelist="31", order_period="12",
                             remoteid="18", domain="example.com")) == ("missing", "func")
    assert not sim.items and sim.balance() == Decimal("100.00")
    doc = bm_client("domain.order.param", pricelist="31", period="12", remoteid="18",
                    domain="example.com", sok="ok", skipbasket="on")
    assert sim.items[text(doc["id"])].params == {"domain": "example.com"}
    assert sim.balance() == Decimal("90.00")


def test_bm5_orders_with_period_and_has_no_v2_forms(start):
    sim = start(api="bm5")
    bm_client = BmClient(sim)
    bm_client.login()
    assert refusal(bm_client("v2.vds.order.param", pricelist="11", order_period="1",
                             remoteid="17")) == ("missing", "func")
    doc = bm_client("vds.order.param", pricelist="11", period="3", remoteid="17", sok="ok",
                    skipbasket="on")
    assert sim.items[text(doc["id"])].period == 3 and sim.balance() == Decimal("86.00")


def test_a_second_order_with_the_same_remoteid_creates_and_charges_again(sim, bm_client):
    first, second = order_v2(bm_client), order_v2(bm_client)
    assert (first, second) == ("4201", "4202")
    assert sim.items[first].remoteid == sim.items[second].remoteid == "17"
    assert sim.balance() == Decimal("90.00")


def test_an_order_the_balance_does_not_cover_answers_not_enough_money(sim, bm_client):
    sim.set_balance("3.00")
    doc = bm_client("v2.vds.order.param", pricelist="11", order_period="1", remoteid="17")
    assert refusal(doc) == ("not_enough_money", "") and not sim.items


def test_an_order_opens_at_the_next_list_or_edit_read(sim, bm_client):
    first = order_v2(bm_client)
    assert sim.items[first].status == 5  # no event poll to open it
    assert text(bm_client("vds.edit", elid=first)["status"]) == "2"
    second = order_v2(bm_client, remoteid="18")
    assert sim.items[second].status == 5
    assert [r["item_status"]["$orig"] for r in rows(bm_client)] == ["2", "2"]


def test_an_order_waits_for_the_open_delay_or_the_admin_action(start):
    sim = start(open_delay=3600)
    bm_client = BmClient(sim)
    bm_client.login()
    item = order_v2(bm_client)
    [row] = rows(bm_client)
    assert row["item_status"] == {"$orig": "5", "$": "Processing"}
    assert text(row["expiredate"]) == ""
    assert requests.post(f"{sim.server.base}/sim/open", json={}, timeout=5).status_code == 200
    assert sim.items[item].status == 2
    assert text(bm_client("vds.edit", elid=item)["expiredate"]) == \
        add_months(date.today(), 1).isoformat()


# --- reading one service ---------------------------------------------------------------------

def test_edit_answers_the_form_with_the_fields_as_children_of_doc(sim, bm_client):
    item = order_v2(bm_client, datacenter="2", ostempl="debian-12", domain="vm17.example",
                    addon_102="2048")
    doc = bm_client("vds.edit", elid=item)
    fields = {key: text(value) for key, value in doc.items()
              if not key.startswith("$") and isinstance(value, dict) and "$" in value}
    ordered = sim.items[item]
    assert fields == {
        "elid": item, "id": item, "pricelist": "11", "status": "2", "remoteid": "17",
        "period": "1", "createdate": ordered.createdate, "datacenter": "2",
        "autoprolong": "off", "expiredate": ordered.expiredate,
        "ostempl": "debian-12", "domain": "vm17.example", "ip": "192.0.2.1",
        "hostname": "vm1.example", "addon_101": "30", "addon_102": "2048"}
    # what is not a field: attributes of doc, and form metadata a client must skip
    others = {key: value for key, value in doc.items() if key not in fields}
    assert {key for key, value in others.items() if isinstance(value, str)} == {"$lang", "$func"}
    assert any(isinstance(value, list) for value in others.values())
    assert any(isinstance(value, dict) and "$" not in value for value in others.values())


def test_edit_of_an_unknown_vanished_or_foreign_account_item_answers_missed(sim, bm_client):
    item = order_v2(bm_client)
    sim.add_account("other@example.net", "pw2", balance="10.00")
    theirs = sim.add_foreign("11", username="other@example.net")
    assert refusal(bm_client("vds.edit", elid="9999")) == ("missed", "elid")
    assert refusal(bm_client("vds.edit", elid=theirs)) == ("missed", "elid")
    assert refusal(bm_client("vhost.edit", elid=item)) == ("missed", "elid")
    sim.vanish(item)
    assert refusal(bm_client("vds.edit", elid=item)) == ("missed", "elid")
    assert "elem" not in bm_client("vds")
    sim.open_pending()  # an item that vanished before it opened stays gone


def test_edit_with_sok_sets_parameters_as_in_the_events_dialect(sim, bm_client):
    item = order_v2(bm_client)
    assert bm_client("vds.edit", elid=item, sok="ok", hostname="web.example") == {"ok": {}}
    assert sim.items[item].params == {"hostname": "web.example"}  # no auth among them
    assert text(bm_client("vds.edit", elid=item)["hostname"]) == "web.example"


# --- listing ---------------------------------------------------------------------------------

def test_the_list_shows_display_values_and_keeps_deleted_services(sim, bm_client):
    kept = order_v2(bm_client, ostempl="debian-12", domain="vm17.example")
    gone = order_v2(bm_client, remoteid="18")
    bm_client("vds.delete", elid=gone)
    doc = bm_client("vds", p_cnt="10", p_num="1")
    first, second = doc["elem"]
    expiry = add_months(date.today(), 1).isoformat()
    assert {key: text(value) for key, value in first.items() if key != "item_status"} == {
        "id": kept, "pricelist": "VDS-1", "expiredate": expiry, "autoprolong": "off",
        "createdate": sim.items[kept].createdate, "status_msg": "", "cost": "5.00 EUR",
        "domain": "vm17.example", "ip": "192.0.2.1", "ostempl": "debian-12"}
    assert first["item_status"] == {"$orig": "2", "$": "Active"}
    assert second["item_status"] == {"$orig": "4", "$": "Deleted"}
    assert "remoteid" not in first
    assert "elem" not in bm_client("vhost")
    assert refusal(bm_client("dedic")) == ("access", "dedic")


def test_the_list_pages_with_p_cnt_and_p_num(sim, bm_client):
    sim.seed(items=5, events=0)
    pages = [[text(r["id"]) for r in rows(bm_client, p_cnt="2", p_num=str(n))] for n in (1, 2, 3)]
    assert pages == [["4201", "4202"], ["4203", "4204"], ["4205"]]
    past = bm_client("vds", p_cnt="2", p_num="4")
    assert "elem" not in past and text(past["p_elems"]) == "5"
    assert len(rows(bm_client)) == 5
    assert refusal(bm_client("vds", p_cnt="0")) == ("value", "p_cnt")


def test_items_seeded_through_the_admin_endpoint_carry_the_parameters_given(sim, bm_client):
    answer = requests.post(f"{sim.server.base}/sim/seed", timeout=10, json={
        "items": 2, "events": 0, "params": {"domain": "vm.example", "ip": "192.0.2.10"}})
    assert answer.json()["items"] == [["4201", "1"], ["4202", "2"]]
    sim.setparam("4201", domain="other.example")
    assert [(text(r["domain"]), text(r["ip"])) for r in rows(bm_client)] == [
        ("other.example", "192.0.2.10"), ("vm.example", "192.0.2.10")]
    assert text(bm_client("vds.edit", elid="4202")["domain"]) == "vm.example"
    bad = requests.post(f"{sim.server.base}/sim/seed", timeout=10,
                        json={"items": 1, "events": 0, "params": ["ip"]})
    assert (bad.status_code, bad.json()["error"]) == (400, "params must be an object")


@pytest.mark.parametrize("api", ["bm6", "bm5"])
def test_upstream_changes_show_in_the_list_and_the_form(start, api):
    sim = start(api=api)
    bm_client = BmClient(sim)
    bm_client.login()
    item = sim.add_foreign("11", {"ip": "192.0.2.50"})
    sim.suspend(item, msg="abuse")
    sim.setparam(item, ip="192.0.2.99")
    sim.set_expiredate(item, "2030-01-31")
    sim.changepricelist(item, "12", check_disk=False)  # staff may change the disk size
    [row] = rows(bm_client)
    assert (text(row["pricelist"]), row["item_status"]["$orig"], text(row["ip"]),
            text(row["expiredate"])) == ("VDS-2", "3", "192.0.2.99", "2030-01-31")
    form = bm_client("vds.edit", elid=item)
    assert (text(form["pricelist"]), text(form["addon_103"]), text(form["remoteid"])) == (
        "12", "60", "")
    assert sim.balance() == Decimal("100.00")  # a foreign item cost the reseller nothing


# --- the quirks of real upstreams ------------------------------------------------------------

def test_quirk_single_row_object(start):
    sim = start(quirks=["single-row-object"])
    bm_client = BmClient(sim)
    bm_client.login()
    order_v2(bm_client)
    assert isinstance(bm_client("vds")["elem"], dict)
    assert isinstance(bm_client("dashboard.info")["elem"], dict)
    order_v2(bm_client, remoteid="18")
    assert len(bm_client("vds")["elem"]) == 2


def test_quirk_item_real_status(start):
    bm_client = BmClient(start(quirks=["item-real-status"]))
    bm_client.login()
    order_v2(bm_client)
    [row] = rows(bm_client)
    assert "item_status" not in row and row["item_real_status"]["$orig"] == "2"


def test_quirk_daily_charges(start):
    sim = start(quirks=["daily-charges"])
    bm_client = BmClient(sim)
    bm_client.login()
    item = order_v2(bm_client)
    [row] = rows(bm_client)
    form = bm_client("vds.edit", elid=item)
    for doc in (row, form):
        assert text(doc["expiredate"]) == "Daily charges"
        assert text(doc["real_expiredate"]) == sim.items[item].expiredate


def test_quirk_no_paging(start):
    sim = start(quirks=["no-paging"])
    bm_client = BmClient(sim)
    bm_client.login()
    sim.seed(items=5, events=0)
    for page in ("1", "2"):
        doc = bm_client("vds", p_cnt="2", p_num=page)
        assert len(doc["elem"]) == 5 and "p_cnt" not in doc


@pytest.mark.parametrize("quirks, amount, shown", [
    ((), "1234.5", "1 234.50 EUR"),
    ((), "95", "95.00 EUR"),
    ((), "1234567.89", "1 234 567.89 EUR"),
    ((), "-3.5", "-3.50 EUR"),
    (("comma-balance",), "1234.5", f"1{NBSP}234,50 EUR"),
    (("comma-balance",), "0", "0,00 EUR"),
])
def test_dashboard_info_shows_the_balance_formatted_with_its_currency(start, quirks, amount,
                                                                      shown):
    sim = start(quirks=quirks)
    sim.set_balance(amount)
    bm_client = BmClient(sim)
    bm_client.login()
    assert text(bm_client("dashboard.info")["elem"][0]["balance"]) == shown


def test_quirk_edit_no_remoteid(start):
    bm_client = BmClient(start(quirks=["edit-no-remoteid"]))
    bm_client.login()
    form = bm_client("vds.edit", elid=order_v2(bm_client))
    assert "remoteid" not in form and text(form["id"]) == "4201"


def test_quirk_edit_missing(start):
    bm_client = BmClient(start(quirks=["edit-missing"]))
    bm_client.login()
    assert refusal(bm_client("vds.edit", elid="9999")) == ("missing", "elid")


def test_unknown_dialects_and_quirks_are_refused():
    for settings in ({"api": "bm7"}, {"api": "bm6", "quirks": ["teapot"]},
                     {"api": "events", "quirks": ["no-paging"]}):
        with pytest.raises(ValueError):
            Simulator(**settings)


def test_the_command_line_offers_every_dialect_and_quirk():
    assert sim_cli.DIALECTS == dialects.DIALECTS
    assert sim_cli.QUIRKS == tuple(dialects.QUIRKS)


# --- the rest of the lifecycle answers as in the events dialect ------------------------------

def test_prolong_suspend_resume_delete_and_change_tariff_answer_as_in_events(sim, bm_client):
    item = order_v2(bm_client)
    bm_client("vds.edit", elid=item)  # opens it
    expiry = add_months(date.fromisoformat(sim.items[item].expiredate), 1).isoformat()
    assert bm_client("service.prolong", elid=item, period="1", sok="ok") == {
        "newexpiredate": {"$": expiry}}
    assert refusal(bm_client("service.changepricelist", elid=item, pricelist="12",
                             sok="ok")) == ("value", "pricelist")
    assert bm_client("service.changepricelist", elid=item, pricelist="13", sok="ok") == {"ok": {}}
    for func, status in (("vds.suspend", 3), ("vds.resume", 2), ("vds.delete", 4)):
        assert bm_client(func, elid=item) == {"ok": {}}
        assert sim.items[item].status == status
    assert refusal(bm_client("vds.suspend", elid="9999")) == ("missing", "elid")
    assert sim.balance() == Decimal("90.00")


# --- the admin endpoint and the command line -------------------------------------------------

def test_cli_sim_commands_act_on_a_running_bm_simulator(sim, bm_client):
    runner = CliRunner()
    env = {"RESELLCTL_SIM_URL": sim.server.url}

    def sim_command(*args):
        return runner.invoke(cli, ["sim", *args], env=env)

    assert sim_command("set-balance", "1234.5").stdout == "1234.50\n"
    assert text(bm_client("dashboard.info")["elem"][0]["balance"]) == "1 234.50 EUR"
    result = sim_command("foreign", "11", "ip=192.0.2.50", "domain=old.example",
                         "--expiredate", "2031-05-01")
    assert (result.exit_code, result.stdout) == (SUCCESS, "4201\n")
    assert sim_command("expiredate", "4201", "2032-01-31").exit_code == SUCCESS
    assert sim_command("change-tariff", "4201", "12").exit_code == SUCCESS
    assert sim_command("setparam", "4201", "ip=192.0.2.51").exit_code == SUCCESS
    assert sim_command("suspend", "4201").exit_code == SUCCESS
    [row] = rows(bm_client)
    assert (text(row["pricelist"]), text(row["expiredate"]), text(row["ip"]),
            text(row["domain"]), row["item_status"]["$orig"]) == (
        "VDS-2", "2032-01-31", "192.0.2.51", "old.example", "3")
    assert sim_command("vanish", "4201").exit_code == SUCCESS
    assert "elem" not in bm_client("vds")
    assert refusal(bm_client("vds.edit", elid="4201")) == ("missed", "elid")
    assert sim_command("expire-sessions").exit_code == SUCCESS
    assert refusal(bm_client("vds")) == ("auth", "")
    state = sim_command("state").stdout
    assert '"api": "bm6"' in state and '"password_requests": 1' in state

    for args in (("change-tariff", "9999", "12"), ("foreign", "99"),
                 ("expiredate", "4201", "2032-01-31"), ("foreign", "11", "ip"),
                 ("set-balance", "lots")):
        refused = sim_command(*args)
        assert refused.exit_code == USAGE and refused.stderr, args


def test_serve_refuses_quirks_without_a_bm_dialect():
    result = CliRunner().invoke(cli, ["sim", "serve", "--quirk", "no-paging"])
    assert result.exit_code == USAGE and "bm6 or bm5" in result.stderr


@pytest.mark.slow
def test_sim_serve_speaks_the_dialect_and_quirks_it_is_given(tmp_path):
    with sim_serve(tmp_path, "--api", "bm5", "--quirk", "comma-balance",
                   "--quirk", "single-row-object", "--session-idle", "30",
                   "--balance", "1500") as process:
        url = process.url
        http = requests.Session()
        login = http.post(url, data={"func": "auth", "out": "json", "username": USERNAME,
                                     "password": "from-file"}, timeout=5).json()["doc"]
        session = login["auth"]["$id"]
        dashboard = http.post(url, data={"func": "dashboard.info", "out": "json",
                                         "auth": session}, timeout=5).json()["doc"]
        assert text(dashboard["elem"]["balance"]) == f"1{NBSP}500,00 EUR"
        v2 = http.post(url, data={"func": "v2.vds.order.param", "out": "json", "auth": session,
                                  "pricelist": "11", "order_period": "1", "remoteid": "1"},
                       timeout=5).json()["doc"]
        assert refusal(v2) == ("missing", "func")
    assert process.returncode == SUCCESS and process.out == ""
    assert "(bm5)" in process.err and "from-file" not in process.err
    assert session not in process.err

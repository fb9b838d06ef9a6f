"""The embedded selling BILLmanager, spoken to over real HTTP in the events dialect of
docs/protocol.md."""

import socket
import time
from datetime import date
from decimal import Decimal

import pytest
import requests
from click.testing import CliRunner

from helpers import COLON_PASSWORD, SUCCESS, TEMPFAIL, USAGE, USERNAME, sim_serve
from resellctl.bmdoc import as_list, named_values, text
from resellctl.cli import cli
from resellctl.sim import Simulator, serve
from resellctl.sim.tariffs import add_months


@pytest.fixture
def sim():
    return Simulator(username=USERNAME, password=COLON_PASSWORD, balance="100.00")


@pytest.fixture
def server(sim):
    with serve(sim) as running:
        yield running


@pytest.fixture
def call(server):
    """POST one API call; the answer's ``doc``."""
    session = requests.Session()

    def call(func, user=USERNAME, password=COLON_PASSWORD, **fields):
        answer = session.post(server.url, data={"func": func, "out": "json",
                                                "authinfo": f"{user}:{password}", **fields},
                              timeout=10)
        assert answer.status_code == 200
        return answer.json()["doc"]

    yield call
    session.close()


def error(doc):
    """(type, object, params) of an error answer."""
    err = doc["error"]
    return err["$type"], err["$object"], named_values(err.get("param"))


def order(call, remoteid="17", pricelist="11", period="1", **fields):
    return call("vds.order.param", pricelist=pricelist, period=period, remoteid=remoteid,
                sok="ok", skipbasket="on", clicked_button="finish", **fields)


def events(call, after=0, limit=None):
    fields = {"after": after} if limit is None else {"after": after, "limit": limit}
    return as_list(call("item.event.list", **fields).get("elem"))


def opened(call, sim, remoteid="17", **fields):
    """Order a VDS-1 and poll the feed once, which opens it; its upstream id."""
    item = text(order(call, remoteid, **fields)["id"])
    events(call)
    assert sim.items[item].status == 2
    return item


# --- tariffs, orders, opening ----------------------------------------------------------------

def test_pricelist_export_lists_the_tariffs_with_prices_and_addons(call):
    tariffs = {text(t["id"]): t for t in call("pricelist.export")["pricelist"]}
    assert set(tariffs) == {"11", "12", "13", "21"}
    vds1 = tariffs["11"]
    assert text(vds1["name"]) == "VDS-1" and text(vds1["itemtype"]) == "vds"
    assert vds1["price"]["$currency"] == "EUR"
    assert [(p["$length"], p["$cost"]) for p in vds1["price"]["period"]] == [
        ("1", "5.00"), ("3", "14.00"), ("12", "50.00")]
    assert [(text(a["id"]), text(a["intname"]), text(a["value"]), text(a["measure"]))
            for a in vds1["addon"]] == [("101", "disk", "30", "GB"), ("102", "ram", "1024", "MB")]
    hosting = call("pricelist.export", itemtype="vhost")["pricelist"]
    assert [text(t["name"]) for t in hosting] == ["Hosting-Start"]


def test_an_order_is_charged_at_once_and_opens_at_the_next_event_poll(call, sim):
    answer = order(call, ostempl="debian-12", addon_102="2048", datacenter="1")
    assert answer == {"id": {"$": "4201"}}
    assert sim.balance() == Decimal("95.00")
    item = sim.items["4201"]
    assert (item.status, item.remoteid, item.pricelist, item.period) == (5, "17", "11", 1)

    [event] = events(call)
    assert item.status == 2
    expiry = add_months(date.today(), 1).isoformat()
    assert {k: text(event[k]) for k in ("id", "type", "item", "remoteid", "itemtype", "status",
                                        "expiredate", "pricelist")} == {
        "id": "101", "type": "open", "item": "4201", "remoteid": "17", "itemtype": "vds",
        "status": "2", "expiredate": expiry, "pricelist": "11"}
    assert time.strptime(text(event["date"]), "%Y-%m-%d %H:%M:%S")
    assert named_values(event["param"]) == {"ip": "192.0.2.1", "hostname": "vm1.example",
                                            "ostempl": "debian-12"}
    assert named_values(event["addon"]) == {"disk": "30", "ram": "2048"}
    assert sim.events() == [event]


@pytest.mark.slow
def test_an_order_waits_for_the_open_delay():
    sim = Simulator(username=USERNAME, password=COLON_PASSWORD, open_delay=0.3)
    with serve(sim) as server:
        base = {"out": "json", "authinfo": f"{USERNAME}:{COLON_PASSWORD}"}
        requests.post(server.url, data={**base, "func": "vhost.order.param", "pricelist": "21",
                                        "period": "12", "remoteid": "5"}, timeout=5)
        poll = {**base, "func": "item.event.list"}
        assert requests.post(server.url, data=poll, timeout=5).json()["doc"]["elem"] == []
        assert sim.items["4201"].status == 5
        time.sleep(0.35)
        [event] = requests.post(server.url, data=poll, timeout=5).json()["doc"]["elem"]
    assert text(event["type"]) == "open" and text(event["itemtype"]) == "vhost"
    assert named_values(event["addon"]) == {"quota": "5000", "domains": "3"}
    assert "ip" not in named_values(event["param"])


def test_a_reused_remoteid_answers_exists_with_the_item_and_charges_nothing(call, sim):
    order(call)
    assert error(order(call)) == ("exists", "remoteid", {"id": "4201"})
    assert sim.balance() == Decimal("95.00") and len(sim.items) == 1


def test_an_order_the_balance_does_not_cover_is_refused_with_the_deficit(call, sim):
    sim.set_balance("3.50")
    doc = order(call, period="3")
    assert error(doc) == ("not_enough_money", "", {"amount": "14.00", "have": "3.50",
                                                   "currency": "EUR", "deficit": "10.50"})
    assert text(doc["error"]["msg"]) == "Insufficient funds: 14.00 EUR required, " \
                                        "3.50 EUR available"
    assert not sim.items and sim.balance() == Decimal("3.50")


@pytest.mark.parametrize("fields, expected", [
    ({"period": "1", "remoteid": "1"}, ("missed", "pricelist")),
    ({"pricelist": "99", "period": "1", "remoteid": "1"}, ("missing", "pricelist")),
    ({"pricelist": "21", "period": "1", "remoteid": "1"}, ("value", "pricelist")),
    ({"pricelist": "11", "period": "1"}, ("missed", "remoteid")),
    ({"pricelist": "11", "period": "6", "remoteid": "1"}, ("value", "period")),
    ({"pricelist": "11", "period": "1", "remoteid": "1", "addon_103": "60"},
     ("value", "addon_103")),
    ({"pricelist": "11", "period": "1", "remoteid": "1", "addon_101": "big"},
     ("value", "addon_101")),
])
def test_bad_orders_name_the_field(call, sim, fields, expected):
    assert error(call("vds.order.param", **fields))[:2] == expected
    assert not sim.items and sim.balance() == Decimal("100.00")


def test_a_failed_opening_is_refunded(call, sim):
    sim.fail_next_open("No free IP addresses")
    order(call, period="12")
    assert sim.balance() == Decimal("50.00")
    [event] = events(call)
    assert (text(event["type"]), text(event["msg"])) == ("openfail", "No free IP addresses")
    assert sim.balance() == Decimal("100.00") and sim.items["4201"].status == 4


# --- calls that are refused before any work --------------------------------------------------

def test_bad_credentials_answer_auth(call, server, sim):
    assert error(call("subaccount", password="wrong"))[0] == "auth"
    assert error(call("subaccount", user="nobody@example.net"))[0] == "auth"
    missing = requests.post(server.url, data={"func": "subaccount", "out": "json"}, timeout=5)
    assert error(missing.json()["doc"])[0] == "auth"
    assert error(call("no.such.func"))[:2] == ("missing", "func")


def test_only_post_is_served_and_only_at_billmgr(server, sim):
    query = f"func=subaccount&out=json&authinfo={USERNAME}:{COLON_PASSWORD}"
    answer = requests.get(f"{server.url}?{query}", timeout=5)
    assert answer.status_code == 200 and error(answer.json()["doc"])[0] == "access"
    assert requests.post(server.base + "/other", data={"func": "subaccount"},
                         timeout=5).status_code == 404
    assert sim.requests[0]["method"] == "GET" and COLON_PASSWORD not in repr(sim.requests)


def test_the_request_log_never_holds_the_password(call, sim):
    order(call)
    call("subaccount", password="wrong")
    assert [(r["method"], r["path"], r["func"], r["authinfo_user"]) for r in sim.requests] == [
        ("POST", "/billmgr", "vds.order.param", USERNAME),
        ("POST", "/billmgr", "subaccount", USERNAME)]
    assert sim.requests[0]["params"]["remoteid"] == "17"
    assert "authinfo" not in sim.requests[0]["params"]
    assert COLON_PASSWORD not in repr(sim.requests) and "s3cret" not in repr(sim.requests)


# --- faults ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, status, is_json", [
    ("500", 500, False), ("html", 200, False), ("garbage", 200, False), ("nodoc", 200, True)])
def test_a_bad_answer_fault_processes_nothing(server, sim, kind, status, is_json):
    sim.fault(kind, func="vds.*")
    fields = {"func": "vds.order.param", "out": "json", "authinfo": f"{USERNAME}:{COLON_PASSWORD}",
              "pricelist": "11", "period": "1", "remoteid": "17"}
    answer = requests.post(server.url, data=fields, timeout=5)
    assert answer.status_code == status
    if is_json:
        assert "doc" not in answer.json()
    else:
        with pytest.raises(ValueError):
            answer.json()
    assert not sim.items and sim.balance() == Decimal("100.00")
    # used up: the same request now goes through
    assert requests.post(server.url, data=fields, timeout=5).json()["doc"]["id"]


def test_a_fault_only_hits_matching_funcs_and_counts_down(server, call, sim):
    item = opened(call, sim)
    sim.fault("nodoc", func="service.*", count=2)
    assert call("subaccount")["elem"]
    fields = {"func": "service.prolong", "out": "json", "authinfo": f"{USERNAME}:{COLON_PASSWORD}",
              "elid": item, "period": "1"}
    for _ in range(2):
        assert "doc" not in requests.post(server.url, data=fields, timeout=5).json()
    assert "newexpiredate" in requests.post(server.url, data=fields, timeout=5).json()["doc"]
    sim.fault("500", count=5)
    sim.clear_faults()
    assert call("subaccount")["elem"]


@pytest.mark.slow
def test_a_delay_fault_answers_late_but_answers(call, sim):
    sim.fault("delay", func="subaccount", seconds=0.3)
    started = time.monotonic()
    assert call("subaccount")["elem"]
    assert time.monotonic() - started >= 0.3


def test_a_drop_fault_closes_the_connection_without_processing(server, sim):
    sim.fault("drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url, data={"func": "vds.order.param", "out": "json",
                                        "authinfo": f"{USERNAME}:{COLON_PASSWORD}",
                                        "pricelist": "11",
                                        "period": "1", "remoteid": "17"}, timeout=5)
    assert not sim.items and sim.balance() == Decimal("100.00")


def test_drop_after_commit_leaves_the_item_created_and_charged(server, call, sim):
    sim.fault("drop_after_commit", func="vds.order.param")
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url, data={"func": "vds.order.param", "out": "json",
                                        "authinfo": f"{USERNAME}:{COLON_PASSWORD}",
                                        "pricelist": "11",
                                        "period": "1", "remoteid": "17"}, timeout=5)
    assert sim.items["4201"].remoteid == "17" and sim.balance() == Decimal("95.00")
    # sending it again is safe: the remoteid names the item that was created
    assert error(order(call)) == ("exists", "remoteid", {"id": "4201"})


def test_unknown_fault_kinds_are_refused(sim):
    with pytest.raises(ValueError):
        sim.fault("teapot")
    with pytest.raises(ValueError):
        sim.fault("delay")


# --- the lifecycle of an item ----------------------------------------------------------------

def test_prolong_charges_and_extends_from_the_expiry_date(call, sim):
    item = opened(call, sim)
    expiry = date.fromisoformat(sim.items[item].expiredate)
    doc = call("service.prolong", elid=item, period="12", sok="ok")
    assert text(doc["newexpiredate"]) == add_months(expiry, 12).isoformat()
    assert sim.balance() == Decimal("45.00")
    event = events(call, after=101)[0]
    assert (text(event["type"]), text(event["expiredate"])) == ("prolong",
                                                                text(doc["newexpiredate"]))
    assert error(call("service.prolong", elid="9999", period="1"))[:2] == ("missing", "elid")
    assert error(call("service.prolong", elid=item, period="2"))[:2] == ("value", "period")
    sim.set_balance("1.00")
    assert error(call("service.prolong", elid=item, period="1"))[2]["deficit"] == "4.00"


def test_suspend_resume_delete_change_the_status_and_log_events(call, sim):
    item = opened(call, sim)
    for func, status in (("vds.suspend", 3), ("vds.resume", 2), ("vds.delete", 4)):
        assert call(func, elid=item) == {"ok": {}}
        assert sim.items[item].status == status
    feed = events(call, after=101)
    assert [(text(e["type"]), text(e["status"])) for e in feed] == [
        ("suspend", "3"), ("resume", "2"), ("close", "4")]
    assert error(call("vds.suspend", elid="9999"))[:2] == ("missing", "elid")
    assert error(call("vhost.suspend", elid=item))[:2] == ("missing", "elid")


def test_changepricelist_refuses_another_disk_size_for_a_vds(call, sim):
    item = opened(call, sim)
    assert error(call("service.changepricelist", elid=item, pricelist="12", sok="ok"))[:2] == \
        ("value", "pricelist")
    assert sim.items[item].pricelist == "11"
    assert call("service.changepricelist", elid=item, pricelist="13", sok="ok") == {"ok": {}}
    event = events(call, after=101)[0]
    assert (text(event["type"]), text(event["pricelist"])) == ("changepricelist", "13")
    assert named_values(event["addon"]) == {"disk": "30", "ram": "2048"}
    assert sim.items[item].addons == {"disk": "30", "ram": "2048"}


def test_edit_reads_the_item_and_writes_its_params(call, sim):
    item = opened(call, sim)
    doc = call("vds.edit", elid=item)
    assert {k: text(doc[k]) for k in ("id", "remoteid", "status", "expiredate", "pricelist")} \
        == {"id": item, "remoteid": "17", "status": "2",
            "expiredate": sim.items[item].expiredate, "pricelist": "11"}
    assert named_values(doc["param"])["ip"] == "192.0.2.1"
    assert named_values(doc["addon"]) == {"disk": "30", "ram": "1024"}

    assert call("vds.edit", elid=item, sok="ok", hostname="web.example") == {"ok": {}}
    event = events(call, after=101)[0]
    assert text(event["type"]) == "setparam"
    assert named_values(event["param"]) == {"hostname": "web.example"}
    assert named_values(call("vds.edit", elid=item)["param"])["hostname"] == "web.example"


def test_upstream_side_actions_append_their_events(call, sim):
    item = opened(call, sim)
    sim.suspend(item, msg="abuse")
    sim.resume(item)
    sim.setparam(item, ip="192.0.2.99")
    sim.set_addon(item, "ram", 4096)
    sim.set_expiredate(item, "2030-01-31")
    sim.delete(item)
    sim.delete(item)  # deleting again changes nothing
    feed = sim.events()[1:]
    assert [e["type"]["$"] for e in feed] == ["suspend", "resume", "setparam", "addon",
                                              "prolong", "close"]
    assert text(feed[0]["msg"]) == "abuse"
    assert named_values(feed[3]["addon"]) == {"ram": "4096"}
    assert sim.items[item].expiredate == "2030-01-31"
    assert [int(text(e["id"])) for e in feed] == list(range(102, 108))


# --- the event feed --------------------------------------------------------------------------

def test_the_event_feed_pages_by_cursor(call, sim):
    pairs = sim.seed(items=3, events=250, first_remoteid=100)
    assert pairs == [("4201", "100"), ("4202", "101"), ("4203", "102")]
    doc = call("item.event.list", after=0)
    assert text(doc["more"]) == "on" and len(doc["elem"]) == 100
    first = doc["elem"][0]
    assert {k: text(first[k]) for k in ("id", "type", "item", "remoteid")} == {
        "id": "101", "type": "setparam", "item": "4201", "remoteid": "100"}
    assert named_values(first["param"]) == {"note": "n0"}

    doc = call("item.event.list", after=300, limit=1000)
    assert text(doc["more"]) == "off"
    assert [text(e["id"]) for e in doc["elem"]] == [str(n) for n in range(301, 351)]
    assert text(call("item.event.list", after=250, limit=100)["more"]) == "off"
    assert sim.items["4202"].params == {"note": "n247"}
    for limit in ("0", "1001", "many"):
        assert error(call("item.event.list", limit=limit))[:2] == ("value", "limit")


def test_ack_discards_old_events_and_never_reuses_ids(call, sim):
    sim.seed(items=1, events=5)
    assert call("item.event.ack", upto="103") == {"ok": {}}
    assert [text(e["id"]) for e in events(call)] == ["104", "105"]
    sim.setparam("4201", note="later")
    assert [text(e["id"]) for e in events(call, after=105)] == ["106"]
    assert error(call("item.event.ack"))[:2] == ("missed", "upto")


def test_accounts_have_their_own_balance_items_and_events(call, sim):
    sim.add_account("other@example.net", "pw2", balance="7.00")
    other = {"user": "other@example.net", "password": "pw2"}
    assert text(call("subaccount", **other)["elem"][0]["balance"]) == "7.00"
    order(call, **other)
    order(call)  # the same remoteid in another account is another service
    events(call)
    assert len(sim.events("other@example.net")) == 1 and len(sim.events()) == 1
    assert error(call("vds.edit", elid="4201"))[:2] == ("missing", "elid")
    assert sim.balance("other@example.net") == Decimal("2.00")


# --- the admin endpoint and the command line -------------------------------------------------

def admin(server, action, **body):
    answer = requests.post(f"{server.base}/sim/{action}", json=body, timeout=10)
    return answer.status_code, answer.json()


def test_the_admin_endpoint_acts_upstream(server, call, sim):
    assert admin(server, "topup", amount="12.50") == (
        200, {"ok": True, "balance": "112.50", "currency": "EUR"})
    item = opened(call, sim)
    assert admin(server, "suspend", item=item, msg="abuse")[0] == 200
    assert admin(server, "setparam", item=item, params={"ip": "192.0.2.7"})[0] == 200
    assert admin(server, "fault", kind="500", func="subaccount")[0] == 200
    assert requests.post(server.url, data={"func": "subaccount"}, timeout=5).status_code == 500
    status, seeded = admin(server, "seed", items=2, events=4, first_remoteid=50)
    assert seeded["items"] == [["4202", "50"], ["4203", "51"]]
    status, state = admin(server, "state")
    assert state["accounts"][0]["events"] == 7
    assert {i["id"]: i["status"] for i in state["items"]} == {item: 3, "4202": 2, "4203": 2}
    status, log = admin(server, "requests")
    assert COLON_PASSWORD not in repr(log) and log["requests"][0]["func"] == "vds.order.param"
    assert admin(server, "suspend", item="9999")[0] == 400
    assert admin(server, "topup")[1] == {"ok": False, "error": "missing field 'amount'"}
    assert admin(server, "nonsense")[0] == 400


def test_cli_admin_commands_talk_to_a_running_simulator(server, call, sim):
    runner = CliRunner()
    env = {"RESELLCTL_SIM_URL": server.url}
    result = runner.invoke(cli, ["sim", "topup", "5"], env=env)
    assert (result.exit_code, result.stdout) == (SUCCESS, "105.00\n")
    result = runner.invoke(cli, ["sim", "seed", "--items", "2", "--events", "3",
                                 "--url", server.base])
    assert result.stdout == "4201\t1\n4202\t2\n"
    assert runner.invoke(cli, ["sim", "setparam", "4201", "ip=192.0.2.5"],
                         env=env).exit_code == SUCCESS
    assert runner.invoke(cli, ["sim", "suspend", "4202", "--msg", "abuse"],
                         env=env).exit_code == SUCCESS
    assert runner.invoke(cli, ["sim", "fault", "drop", "--func", "vds.*"],
                         env=env).exit_code == SUCCESS
    assert sim.items["4201"].params["ip"] == "192.0.2.5" and sim.items["4202"].status == 3
    assert '"events": 5' in runner.invoke(cli, ["sim", "state"], env=env).stdout

    refused = runner.invoke(cli, ["sim", "resume", "9999"], env=env)
    assert refused.exit_code == USAGE and "9999" in refused.stderr
    assert runner.invoke(cli, ["sim", "setparam", "4201", "ip"], env=env).exit_code == USAGE
    gone = runner.invoke(cli, ["sim", "state", "--url", "http://127.0.0.1:9/billmgr"])
    assert gone.exit_code == TEMPFAIL and len(gone.stderr.strip().splitlines()) == 1


def test_serve_refuses_a_public_address_without_public():
    result = CliRunner().invoke(cli, ["sim", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == USAGE and "--public" in result.stderr


@pytest.mark.slow
def test_sim_serve_prints_its_url_and_stops_cleanly_on_sigterm(tmp_path):
    with sim_serve(tmp_path, "--port", "0", "--balance", "20") as process:
        url = process.url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/billmgr")
        answer = requests.post(url, data={"func": "subaccount", "out": "json",
                                          "authinfo": f"{USERNAME}:from-file"}, timeout=5)
        assert text(answer.json()["doc"]["elem"][0]["balance"]) == "20.00"
    assert process.returncode == SUCCESS and process.out == ""
    assert "from-file" not in process.err


# A TLS 1.3 ClientHello, as an https client sends first: no line ends, bytes that are not text.
TLS_CLIENT_HELLO = (bytes.fromhex("160301002f0100002b0303") + bytes(range(32))
                    + bytes.fromhex("000002130101000000"))


@pytest.mark.slow
def test_sim_serve_answers_what_is_not_http_with_400_and_keeps_serving(tmp_path):
    with sim_serve(tmp_path, "--verbose") as process:
        url = process.url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        for payload in (TLS_CLIENT_HELLO,
                        b"\x00\xff garbage authinfo=" + USERNAME.encode() + b":from-file\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(payload)
                raw.shutdown(socket.SHUT_WR)
                answer = b"".join(iter(lambda: raw.recv(4096), b""))
            assert b"Error code: 400" in answer
        still = requests.post(url, data={"func": "subaccount", "out": "json",
                                         "authinfo": f"{USERNAME}:from-file"}, timeout=5)
        assert text(still.json()["doc"]["elem"][0]["balance"]) == "100.00"
    assert process.returncode == SUCCESS
    assert "Traceback" not in process.err and "Exception" not in process.err
    assert "garbage authinfo=reseller@example.net:***" in process.err
    assert "from-file" not in process.err

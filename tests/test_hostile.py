"""A broken or hostile upstream (tests/hostile.py) costs bounded time and memory: every call ends
by its deadline and reads a bounded answer, and whatever comes back is a temporary failure of
that call: exit status 75, one line on stderr, no traceback, and the other modules synced all
the same. Where the point is a hang or memory, the command runs in a process of its own."""

import json
import os
import resource
import shutil
import subprocess
import sys

import pytest

import hostile
from helpers import ERROR, PASSWORD, SUCCESS, TEMPFAIL, USAGE, USERNAME
from hostile import MiB
from resellctl.bmdoc import scalar

SMALL_CAP = "0.05"  # MiB: 52,428 bytes, and 1,638 values at 32 bytes a value


def add_module(run, name, url, password_file):
    # The dialect is given: asking a hostile upstream which it speaks is not the point here.
    r = run("modules", "add", name, "--type", "billmanager", "--url", url, "--username",
            USERNAME, "--password-file", password_file, "--api", "events")
    assert r.exit_code == SUCCESS, r


@pytest.fixture
def store_with_bad_module(run, sim, password_file):
    """``store_with_bad_module(url)``: module bad-up on ``url``, then vds-up on the simulator
    with service 1 ordered, which opens with the next event poll."""
    def setup(url):
        add_module(run, "bad-up", url, password_file)
        add_module(run, "vds-up", sim.server.url, password_file)
        assert run("tariffs", "import", "vds-up").exit_code == SUCCESS
        assert run("order", "VDS-1", "--client", "acme").exit_code == SUCCESS
    return setup


def synced(run):
    """Whether checkevent synced vds-up: its service 1 is active."""
    return json.loads(run("services", "show", "1", "--json").stdout)["status"] == 2


def one_line(stderr, start):
    """The one line on ``stderr``, which begins with ``start``."""
    assert "Traceback" not in stderr and PASSWORD not in stderr, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith(start), stderr
    return stderr


def run_in_process(db_path, *args, memory=None, **env):
    """``resellctl ARGS`` in a process of its own; ``memory``: its address space limit."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "resellctl", *map(str, args)],
                          env={**os.environ, "RESELLCTL_DB": db_path, **env},
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=limit if memory else None)


# --- malformed answers ------------------------------------------------------------------------

MALFORMED = {
    "nested-beyond-the-decoder": (hostile.nested(1500), "the answer nests too deep to decode"),
    # Finite, so that a client without a cap fails the test rather than fill the memory.
    "a-chunked-body-beyond-the-cap": (hostile.chunked([b"[{}," * 16384] * 16),
                                      "the answer is larger than 0.05 MiB"),
    "a-gzip-bomb": (hostile.gzip_bomb(4 * MiB), "the answer is larger than 0.05 MiB"),
    "a-length-beyond-the-cap": (hostile.promise(10**12), "the answer is larger than 0.05 MiB"),
    "many-values-in-little-json": (hostile.many_values(3000),
                                   "the answer holds more than 1,638 values"),
    "a-huge-header": (hostile.huge_header(100_000), "LineTooLong"),
}


@pytest.mark.parametrize("behaviour, message", MALFORMED.values(), ids=MALFORMED)
def test_checkevent_fails_the_module_of_a_malformed_answer_and_syncs_the_others(
        run, store_with_bad_module, monkeypatch, behaviour, message):
    monkeypatch.setenv("RESELLCTL_MAX_ANSWER_MB", SMALL_CAP)
    with hostile.Hostile(behaviour) as bad:
        store_with_bad_module(bad.url)
        r = run("checkevent")
    assert r.exit_code == TEMPFAIL, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert message in line and "(a temporary failure; the request may have reached" in line
    assert "vds-up: 1 applied" in r.stdout
    assert synced(run)


def test_a_malformed_answer_is_a_temporary_failure_of_tariffs_import_and_order(
        run, password_file):
    nested = hostile.nested(3000)
    with hostile.Hostile(hostile.by_func(nested, pricelist_export=hostile.pricelists())) as bad:
        add_module(run, "bad-up", bad.url, password_file)
        assert run("tariffs", "import", "bad-up").exit_code == SUCCESS
        r = run("order", "VDS-1")
        bad.behaviour = nested
        imported = run("tariffs", "import", "bad-up")
    assert r.exit_code == TEMPFAIL, r
    assert "the answer nests too deep to decode" in r.stderr.splitlines()[0]
    # The failure, what to do once the upstream answers, and the count: three lines.
    assert len(r.stderr.splitlines()) == 3
    assert r.stderr.splitlines()[-1] == "Error: 1 of 1 operation(s) failed"
    assert imported.exit_code == TEMPFAIL, imported
    one_line(imported.stderr, "Error: pricelist.export on 127.0.0.1:")
    assert "the answer nests too deep to decode" in imported.stderr


def test_a_form_whose_status_is_no_code_is_a_temporary_failure_of_services_import(
        run, password_file):
    """`services import` took a form's status for a number: a word there was a traceback, and
    a date that is none went into the books."""
    form = {"id": scalar(4211), "status": scalar("Active"), "pricelist": scalar(11)}
    with hostile.Hostile(hostile.by_func(hostile.answer(form),
                                         pricelist_export=hostile.pricelists())) as bad:
        add_module(run, "bad-up", bad.url, password_file)
        assert run("tariffs", "import", "bad-up").exit_code == SUCCESS
        r = run("services", "import", "bad-up", "--upstream-id", "4211")
        form.update(status=scalar(2), expiredate=scalar("soon"))
        bad.behaviour = hostile.by_func(hostile.answer(form))
        dated = run("services", "import", "bad-up", "--upstream-id", "4211")
    assert r.exit_code == TEMPFAIL, r
    one_line(r.stderr, "Error: vds.edit on 127.0.0.1:")
    assert "the answer has an unexpected shape (status 'Active')" in r.stderr
    assert dated.exit_code == TEMPFAIL, dated
    assert "the answer has an unexpected shape (expiredate 'soon')" in dated.stderr
    assert run("services", "list", "-q").stdout == ""


def test_an_event_nested_too_deep_to_log_is_rejected_and_passed(run, password_file):
    """Decoded in the thread that fetches pages, it went past Python's recursion limit where
    json.dumps logged it, with the deeper stack of the main thread."""
    feed = hostile.by_func(hostile.nested(960, "param"), subaccount=hostile.balance(),
                           item_event_ack=hostile.answer(hostile.OK))
    with hostile.Hostile(feed) as bad:
        add_module(run, "bad-up", bad.url, password_file)
        r = run("checkevent")
    assert r.exit_code == SUCCESS, r
    assert r.stdout.startswith("bad-up: 0 applied, 0 skipped (already applied), 0 unknown, "
                               "1 rejected")
    [problem] = json.loads(run("events", "list", "--problem", "--json").stdout)
    assert problem["reason"] == "field 'param': expected a list of named values"
    assert problem["raw"] == "(nested more than 100 levels deep: not kept)"


def test_half_a_surrogate_pair_in_an_answer_is_replaced_not_a_blocked_feed(
        run, password_file):
    """JSON may escape half of a surrogate pair alone: Python decodes it to a string the
    books' UTF-8 refuses, and the same page failed every run for ever."""
    page = (b'{"doc": {"more": {"$": "off"}, "elem": [{"id": {"$": "101"}, '
            b'"type": {"$": "setparam"}, "item": {"$": "4211"}, '
            b'"param": [{"$name": "note\\udfff", "$": "a\\ud800b \\ud83d\\ude00"}]}]}}')
    tariffs = (b'{"doc": {"pricelist": [{"id": {"$": "11"}, "name": {"$": "VDS\\udc00"}, '
               b'"itemtype": {"$": "vds"}, "price": {"$currency": "EUR", '
               b'"period": [{"$length": "1", "$cost": "5.00"}]}}]}}')
    feed = hostile.by_func(hostile.answer(page), subaccount=hostile.balance(),
                           item_event_ack=hostile.answer(hostile.OK),
                           pricelist_export=hostile.answer(tariffs))
    with hostile.Hostile(feed) as bad:
        add_module(run, "bad-up", bad.url, password_file)
        imported = run("tariffs", "import", "bad-up")
        r = run("checkevent")
    assert imported.exit_code == SUCCESS, imported
    assert [t["name"] for t in json.loads(run("tariffs", "list", "--json").stdout)] == [
        "VDS\ufffd"]
    assert r.exit_code == SUCCESS, r
    assert "1 unknown" in r.stdout  # no service 4211 here: logged, and the feed moved on
    [problem] = json.loads(run("events", "list", "--problem", "--json").stdout)
    assert problem["raw"]["param"] == [{"$name": "note\ufffd", "$": "a\ufffdb \U0001f600"}]
    assert json.loads(run("checkevent", "--json").stdout)[0]["cursor"] == 101


# --- hangs: every call ends by its deadline ---------------------------------------------------

# A good answer, a byte a second: far longer than any deadline here.
DRIP = hostile.OK[:-1] + b" " * 600 + b"}"


@pytest.mark.slow
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status-line-and-headers"])
def test_a_dripping_answer_ends_with_the_call_deadline(run, store_with_bad_module, headers_too):
    with hostile.Hostile(hostile.drip(DRIP, headers_too=headers_too)) as bad:
        store_with_bad_module(bad.url)
        r = run_in_process(run.db_path, "checkevent", RESELLCTL_CALL_TIMEOUT="2",
                           RESELLCTL_RETRY_ATTEMPTS="1")
    assert r.returncode == TEMPFAIL, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert "the answer did not complete within 2 s (a temporary failure; the request may " in line
    assert "vds-up: 1 applied" in r.stdout
    assert synced(run)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key: ``(cert path, key path)``."""
    if not shutil.which("openssl"):
        pytest.skip("openssl makes the test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.mark.slow
def test_a_dripping_answer_over_tls_ends_with_the_call_deadline(run, store_with_bad_module,
                                                                certificate):
    with hostile.Hostile(hostile.drip(DRIP), tls=certificate) as bad:
        store_with_bad_module(bad.url)
        r = run_in_process(run.db_path, "checkevent", RESELLCTL_CALL_TIMEOUT="2",
                           RESELLCTL_RETRY_ATTEMPTS="1", REQUESTS_CA_BUNDLE=certificate[0])
    assert r.returncode == TEMPFAIL, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert "the answer did not complete within 2 s" in line
    assert synced(run)


def test_an_untrusted_certificate_is_a_configuration_error_said_at_once(
        run, store_with_bad_module, certificate):
    """A certificate that fails today fails at every retry and every cron tick: exit 1 at once
    with what to check, not four tries and a 'temporary' 75."""
    with hostile.Hostile(hostile.answer(hostile.OK), tls=certificate) as bad:
        store_with_bad_module(bad.url)
        r = run("checkevent", "--module", "bad-up")
    assert r.exit_code == ERROR, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert "TLS failed: " in line and "certificate verify failed" in line
    assert "resellctl modules edit bad-up --url URL" in line and "REQUESTS_CA_BUNDLE" in line


@pytest.mark.slow
def test_connecting_ends_with_the_call_deadline(run, store_with_bad_module, monkeypatch):
    monkeypatch.setenv("RESELLCTL_CALL_TIMEOUT", "1")
    monkeypatch.setenv("RESELLCTL_RETRY_ATTEMPTS", "1")
    with hostile.Backlogged() as bad:
        store_with_bad_module(bad.url)
        r = run("checkevent")
    assert r.exit_code == TEMPFAIL, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert "no connection within 1 s (a temporary failure; the request was not sent)" in line
    assert synced(run)


@pytest.mark.slow
def test_no_call_runs_past_the_time_budget(run, store_with_bad_module):
    """Retries and a read timeout that a drip never reaches would carry the run on for ever."""
    with hostile.Hostile(hostile.drip(DRIP)) as bad:
        store_with_bad_module(bad.url)
        r = run_in_process(run.db_path, "checkevent", "--time-budget", "2",
                           RESELLCTL_RETRY_ATTEMPTS="100", RESELLCTL_READ_TIMEOUT="3")
    assert r.returncode == TEMPFAIL, r
    assert "Traceback" not in r.stderr
    error, warning = r.stderr.splitlines()
    assert error.startswith("error: module bad-up: item.event.list on 127.0.0.1:")
    assert ", the end of the run's time budget (a temporary failure;" in error
    assert bad.funcs == ["item.event.list"]
    # The module after it would start past the budget: it waits for the next run.
    assert warning == ("warning: module vds-up: not synced: the time budget ran out before its "
                       "turn")
    assert not synced(run)
    assert run("checkevent").exit_code == TEMPFAIL  # bad-up, gone now, cannot be reached
    assert synced(run)


@pytest.mark.slow
def test_order_and_ops_start_end_with_the_call_deadline(run, password_file):
    with hostile.Hostile(hostile.by_func(hostile.drip(DRIP),
                                         pricelist_export=hostile.pricelists())) as bad:
        add_module(run, "bad-up", bad.url, password_file)
        assert run("tariffs", "import", "bad-up").exit_code == SUCCESS
        env = dict(RESELLCTL_CALL_TIMEOUT="1", RESELLCTL_RETRY_ATTEMPTS="1")
        ordered = run_in_process(run.db_path, "order", "VDS-1", **env)
        started = run_in_process(run.db_path, "ops", "start", "1", **env)
    for r in (ordered, started):
        assert r.returncode == TEMPFAIL, r
        assert "Traceback" not in r.stderr
        assert "the answer did not complete within 1 s" in r.stderr
        assert r.stderr.splitlines()[-1] == "Error: 1 of 1 operation(s) failed"
    assert bad.funcs == ["pricelist.export", "vds.order.param", "vds.order.param"]


# --- memory: the default cap holds ------------------------------------------------------------

HUGE = {
    "an-endless-body": (hostile.endless(), "the answer is larger than 32 MiB"),
    "a-gzip-bomb": (hostile.gzip_bomb(400 * MiB), "the answer is larger than 32 MiB"),
    # Within the cap, but some 770 MiB once decoded.
    "many-values-in-little-json": (hostile.many_values(10_000_000),
                                   "the answer holds more than 1,048,576 values"),
}


@pytest.mark.slow
@pytest.mark.parametrize("behaviour, message", HUGE.values(), ids=HUGE)
def test_a_huge_answer_is_refused_within_the_memory_of_a_small_machine(run, store_with_bad_module,
                                                                       behaviour, message):
    with hostile.Hostile(behaviour) as bad:
        store_with_bad_module(bad.url)
        r = run_in_process(run.db_path, "checkevent", memory=512 * MiB,
                           RESELLCTL_RETRY_ATTEMPTS="1")
    assert r.returncode == TEMPFAIL, r
    line = one_line(r.stderr, "error: module bad-up: item.event.list on 127.0.0.1:")
    assert f"{message} (RESELLCTL_MAX_ANSWER_MB)" in line
    assert synced(run)


# --- the settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [("RESELLCTL_CALL_TIMEOUT", "soon"),
                                         ("RESELLCTL_CALL_TIMEOUT", "0"),
                                         ("RESELLCTL_MAX_ANSWER_MB", "-1"),
                                         ("RESELLCTL_MAX_ANSWER_MB", "nan")])
def test_a_bad_setting_is_bad_input(run, upstream, monkeypatch, name, value):
    sent = len(upstream.requests)
    monkeypatch.setenv(name, value)
    r = run("checkevent")
    assert r.exit_code == USAGE, r
    one_line(r.stderr, f"Error: {name} must be a number of at least ")
    assert len(upstream.requests) == sent  # nothing sent


@pytest.mark.slow
def test_a_call_timeout_of_inf_sets_no_deadline(run, upstream):
    upstream.fault("delay", func="pricelist.export", seconds=0.3)  # a call the watchdog sees
    r = run_in_process(run.db_path, "tariffs", "import", "vds-up", RESELLCTL_CALL_TIMEOUT="inf")
    assert (r.returncode, r.stderr) == (
        SUCCESS, "tariffs of vds-up: 0 added, 0 updated, 4 unchanged\n"), r

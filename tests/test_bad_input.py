"""Bad input anywhere: exit 2, one clear line on stderr, no traceback, nothing written or sent."""

import json
import sqlite3

import pytest

from helpers import SUCCESS, USAGE, USERNAME, error_line, order_active, query, run_json, tsv

TABLES = ("processingmodule", "pricelist", "item", "runningoperation", "task", "itemhistory")
BIG = str(2**63)  # one past SQLite's largest integer
HUGE_ID = "9" * 23  # far past it

# With the `done_and_waiting` below: operation 1 is done, operation 2 waits upstream.
CASES = [
    # order
    (["order", "VDS-1", "--quantity", "0"], "quantity must be between 1 and 100, not 0"),
    (["order", "VDS-1", "--quantity", "-1"], "quantity must be between 1 and 100, not -1"),
    (["order", "VDS-1", "--quantity", "abc"], "'abc' is not a valid integer"),
    (["order", "VDS-1", "--quantity", "1000000000"], "between 1 and 100, not 1000000000"),
    (["order", "VDS-1", "--quantity", "101"], "between 1 and 100, not 101"),
    (["order", "NOPE"], "no tariff 'NOPE'"),
    (["order", "99"], "no tariff '99'"),
    (["order", "VDS-1", "--period", "2"], "'VDS-1' is not sold for 2 months (periods: 1, 3, 12)"),
    (["order", "VDS-1", "--period", "0"], "not sold for 0 months"),
    (["order", "VDS-1", "--period", "one"], "'one' is not a valid integer"),
    (["order", "VDS-1", "--param", "ostempl"], "--param must look like NAME=VALUE, not 'ostempl'"),
    (["order", "VDS-1", "--param", "=debian"], "--param must look like NAME=VALUE"),
    (["order", "VDS-1", "--addon", "cpu=2"], "'VDS-1' has no addon 'cpu' (it has: disk, ram)"),
    (["order", "VDS-1", "--addon", "disk"], "--addon must look like NAME=VALUE"),
    (["order", "VDS-1", "--addon", "disk=big"], "addon disk needs a whole number, not 'big'"),
    (["order", "VDS-1", "--json", "-q"], "give --json or -q, not both"),
    # unknown things and ids that are not numbers
    (["tariffs", "import", "nope"], "no processing module 'nope' (known: vds-up, manual)"),
    (["tariffs", "import", "manual"], "is a manual module"),
    (["tariffs", "list", "--module", "nope"], "no processing module 'nope'"),
    (["services", "show", "99"], "no service 99"),
    (["services", "show", "abc"], "service id must be a number, not 'abc'"),
    (["set-module", "99", "manual"], "no service 99"),
    (["set-module", "1", "nope"], "no processing module 'nope'"),
    (["set-module", "x1", "manual"], "service id must be a number, not 'x1'"),
    (["ops", "show", "99"], "no operation 99"),
    (["ops", "show", "abc"], "operation id must be a number, not 'abc'"),
    (["ops", "show", "0"], "operation id must be positive"),
    (["ops", "start", "99"], "no operation 99"),
    (["ops", "start", "abc"], "operation id must be a number, not 'abc'"),
    (["ops", "start", "1.5"], "operation id must be a number, not '1.5'"),
    (["ops", "start", "2", "-"], "not both"),
    (["ops", "list", "--item", "abc"], "'abc' is not a valid integer"),
    (["ops", "list", "--status", "lost"], "'lost' is not one of 'new', 'waiting'"),
    (["ops", "list", "--json", "-q"], "give --json or -q, not both"),
    (["tasks", "close", "99"], "no task 99"),
    (["tasks", "close", "abc"], "task id must be a number, not 'abc'"),
    (["tasks", "list", "--item", "abc"], "'abc' is not a valid integer"),
    # bytes that are not UTF-8 (a latin-1 terminal), as they reach sys.argv
    (["order", "VDS-1", "--client", "M\udcfcller"], "argument 'M\\xfcller' is not UTF-8 text"),
    (["order", "VDS-\udcff"], "argument 'VDS-\\xff' is not UTF-8 text"),
    (["services", "list", "--client", "\udcfc"], "argument '\\xfc' is not UTF-8 text"),
    (["services", "set-param", "1", "note=\udcfc"], "argument 'note=\\xfc' is not UTF-8 text"),
    (["tasks", "close", "1", "--note", "\udcfc"], "argument '\\xfc' is not UTF-8 text"),
    # a name that str.isdigit() takes but int() does not, and ids past SQLite's integers
    (["order", "\u00b2"], "no tariff '\u00b2'"),
    (["order", BIG], f"no tariff '{BIG}'"),
    (["order", "9" * 40], "no tariff '99999"),
    (["services", "change-tariff", "1", "\u00b2"], "no tariff '\u00b2'"),
    (["services", "change-tariff", "1", BIG], f"no tariff '{BIG}'"),
    (["set-module", "1", "\u00b2"], "no processing module '\u00b2' (known: vds-up, manual)"),
    (["set-module", "1", BIG], f"no processing module '{BIG}'"),
    (["tariffs", "import", "\u00b2"], "no processing module '\u00b2'"),
    (["tariffs", "import", BIG], f"no processing module '{BIG}'"),
    (["tariffs", "list", "--module", "\u00b2"], "no processing module '\u00b2'"),
    (["tariffs", "list", "--module", BIG], f"no processing module '{BIG}'"),
    (["events", "list", "--module", "\u00b2"], "no processing module '\u00b2'"),
    (["checkevent", "--module", "\u00b2"], "no processing module '\u00b2'"),
    (["checkevent", "--module", BIG], f"no processing module '{BIG}'"),
    # ids too large for the books, or written in digits int() takes and the books do not
    (["ops", "show", HUGE_ID], f"operation id must be at most {2**63 - 1}, not {HUGE_ID}"),
    (["ops", "start", HUGE_ID], f"operation id must be at most {2**63 - 1}"),
    (["services", "show", HUGE_ID], "service id must be at most"),
    (["services", "prolong", HUGE_ID], "service id must be at most"),
    (["set-module", HUGE_ID, "manual"], "service id must be at most"),
    (["tasks", "close", HUGE_ID], "task id must be at most"),
    (["ops", "list", "--item", HUGE_ID], "is not in the range 1<=x<="),
    (["tasks", "list", "--item", HUGE_ID], "is not in the range 1<=x<="),
    (["services", "list", "--after", HUGE_ID], "is not in the range 0<=x<="),
    (["events", "list", "--limit", HUGE_ID], "is not in the range 0<=x<="),
    (["ops", "start", "\u00b2"], "operation id must be a number, not '\u00b2'"),
    (["services", "show", "1_0"], "service id must be a number, not '1_0'"),
    # an addon's value in ASCII digits only
    *[(["order", "VDS-1", "--addon", f"ram={value}"],
       f"addon ram needs a whole number, not {value!r}")
      for value in ("\u00b2", "\u0661\u0662", "", "-5", "4.5")],
    # a period of 0 months is refused, not taken for the default
    (["services", "prolong", "1", "--period", "0"],
     "tariff 'VDS-1' is not sold for 0 months (periods: 1, 3, 12)"),
    # operations that may not be started
    (["ops", "start", "1"], "only failed or new operations can be started: operation 1 is done"),
    (["ops", "start", "2"], "operation 2 is waiting"),
    (["ops", "start", "2", "1"], "operation 2 is waiting; operation 1 is done"),
    (["ops", "start", "1", "--dry-run"],  # what the real start refuses
     "only failed or new operations can be started: operation 1 is done"),
    # modules add
    (["modules", "add", "up2", "--type", "billmanager", "--url", "ftp://billing.example.com",
      "--username", USERNAME, "--password-file", "{password_file}"],
     "--url must be an http(s) URL, not 'ftp://billing.example.com'"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "billing.example.com",
      "--username", USERNAME, "--password-file", "{password_file}"], "must be an http(s) URL"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://u:p@example.com/b",
      "--username", USERNAME, "--password-file", "{password_file}"],
     "--url must not hold credentials"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://example.com/b",
      "--username", USERNAME, "--password-file", "{tmp}/missing.pw"],
     "cannot read the password file {tmp}/missing.pw: No such file or directory"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://example.com/b",
      "--username", USERNAME, "--password-file", "{tmp}/empty.pw"],
     "the password file {tmp}/empty.pw is empty"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://example.com/b",
      "--username", USERNAME, "--password-file", "{tmp}/latin1.pw"],
     "the password file {tmp}/latin1.pw is not UTF-8 text"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://example.com/b",
      "--username", USERNAME, "--password-stdin"], "the password read from stdin is empty"),
    (["modules", "add", "up2", "--type", "billmanager", "--url", "https://example.com/b",
      "--username", USERNAME, "--password-file", "{password_file}", "--password-stdin"],
     "give --password-file or --password-stdin, not both"),
    (["modules", "add", "up2", "--type", "billmanager", "--username", USERNAME,
      "--password-file", "{password_file}"], "a billmanager module needs --url"),
    (["modules", "add", "up2", "--type", "manual", "--url", "https://example.com/b"],
     "a manual module takes no --url"),
    (["modules", "add", "up2", "--type", "manual", "--min-balance", "lots"],
     "--min-balance must be an amount like 20 or 20.50, not 'lots'"),
    (["modules", "add", "up2", "--type", "manual", "--min-balance", "-5"], "not '-5'"),
    (["modules", "add", "up2", "--type", "manual", "--min-balance", "NaN"], "not 'NaN'"),
    (["modules", "add", "up2", "--type", "manual", "--min-balance", "inf"], "not 'inf'"),
    (["modules", "add", "2up", "--type", "manual"], "module name '2up' must start with a letter"),
    (["modules", "add", "up2", "--type", "ftp"], "'ftp' is not one of 'billmanager', 'manual'"),
    (["modules", "add", "manual", "--type", "manual"], "module 'manual' exists already"),
]


@pytest.fixture
def done_and_waiting(run, upstream, tmp_path):
    assert run("order", "VDS-1").exit_code == SUCCESS
    assert run("checkevent").exit_code == SUCCESS
    assert run("order", "VDS-1").exit_code == SUCCESS
    (tmp_path / "empty.pw").write_text("\n")
    (tmp_path / "latin1.pw").write_bytes("pässword\n".encode("latin-1"))
    return upstream


def counts(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


@pytest.mark.parametrize("args, expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_refused_with_one_line(run, done_and_waiting, password_file, tmp_path, args,
                                            expected):
    sim = done_and_waiting
    fill = {"password_file": password_file, "tmp": str(tmp_path)}
    before, sent = counts(run.db_path), len(sim.requests)
    result = run(*(a.format(**fill) for a in args), input="")
    assert expected.format(**fill) in error_line(result)
    assert counts(run.db_path) == before
    assert len(sim.requests) == sent


def test_the_hint_names_the_next_step(run, done_and_waiting):
    result = run("order", "VDS-9")
    assert error_line(result) == "Error: no tariff 'VDS-9'"
    assert "resellctl tariffs list" in result.stderr


def test_a_password_on_stdin_that_is_not_utf8_is_refused_with_one_line(run, done_and_waiting):
    before = counts(run.db_path)
    result = run("modules", "add", "up2", "--type", "billmanager", "--url",
                 "https://example.com/b", "--username", USERNAME, "--password-stdin",
                 input="pässword\n".encode("latin-1"))
    assert error_line(result) == "Error: the password read from stdin is not UTF-8 text"
    assert counts(run.db_path) == before


@pytest.mark.parametrize("args", [
    ["order", "VDS-1", "--param", "remoteid=5"],
    ["order", "VDS-1", "--param", "sok=no"],
    ["services", "set-param", "1", "elid=9"],
    ["services", "set-param", "1", "authinfo=x:y"],
])
def test_a_parameter_the_protocol_sets_is_refused_before_anything_is_written(run, upstream, args):
    order_active(run, upstream)
    before = query(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id")
    r = run(*args)
    assert r.exit_code == USAGE, r
    assert "is reserved for the protocol" in r.stderr
    # No service and no operation were written, so nothing is left stuck in status new...
    assert query(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id") == before
    assert query(run.db_path, "SELECT count(*) FROM item") == [(1,)]
    # ...and the service can still be changed.
    assert run("services", "set-param", "1", "hostname=www.example.com").exit_code == SUCCESS


@pytest.mark.parametrize("args, name", [
    (["order", "VDS-1", "--param", "addon_101=500"], "addon_101"),
    (["order", "VDS-1", "--addon", "disk=40", "--param", "addon_101=99"], "addon_101"),
    (["order", "VDS-1", "--param", "ADDON_102=4096"], "ADDON_102"),
    (["order", "VDS-1", "--param", "addon_999=1"], "addon_999"),  # not even the tariff's
    (["services", "set-param", "1", "hostname=a", "addon_101=500"], "addon_101"),
])
def test_a_resource_is_set_through_addon_never_through_a_parameter(run, upstream, args, name):
    """A parameter addon_<id> would have the upstream provision 500 GB while the books say 30."""
    order_active(run, upstream)
    before = query(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id")
    sent = len(upstream.requests)
    r = run(*args)
    assert r.exit_code == USAGE, r
    error, hint = r.stderr.splitlines()
    assert error == f"Error: parameter {name!r} names a resource, which no parameter may set"
    assert hint.startswith("Set resources with --addon NAME=VALUE, ")
    assert query(run.db_path, "SELECT id, status FROM runningoperation ORDER BY id") == before
    assert query(run.db_path, "SELECT count(*) FROM item") == [(1,)]
    assert len(upstream.requests) == sent
    # Through --addon, the upstream and the books agree on the disk.
    [row] = tsv(run("order", "VDS-1", "--addon", "disk=50").stdout)
    upstream.open_pending()
    assert run("checkevent").exit_code == SUCCESS
    service = json.loads(run("services", "show", row["item"], "--json").stdout)
    assert service["addons"]["disk"] == "50"
    assert upstream.item(service["upstream_id"]).addons["disk"] == "50"


@pytest.mark.parametrize("args, says", [
    (["--ack-after", "nan"], "'nan' is not a number"),
    (["--ack-after", "inf"], "is not in the range 0<=x<=3650"),
    (["--ack-after", "1e10"], "is not in the range 0<=x<=3650"),
    (["--time-budget", "nan"], "'nan' is not a number"),
])
def test_checkevent_refuses_a_number_that_is_none_or_endless(run, upstream, args, says):
    assert run("order", "VDS-1").exit_code == SUCCESS
    upstream.open_pending()  # an event waits
    r = run("checkevent", *args)
    assert r.exit_code == USAGE, r
    assert says in r.stderr
    # Nothing was read: the feed is where it was.
    assert query(run.db_path, "SELECT event_cursor FROM processingmodule "
                              "WHERE name = 'vds-up'") == [(0,)]


@pytest.mark.parametrize("amount", ["1e400", "9" * 40])
def test_sim_refuses_an_amount_too_large_for_money(run, sim, amount):
    r = run("sim", "topup", amount, "--url", sim.server.url)
    assert r.exit_code == USAGE, r
    assert f"not an amount of money: {amount!r}" in r.stderr
    assert str(sim.balance()) == "100.00"


@pytest.mark.parametrize("url, says", [
    ("http://[::1/billmgr", "--url is not a valid URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:99999/billmgr", "--url is not a valid URL (Port out of range"),
    ("http://127.0.0.1:abc/billmgr", "--url is not a valid URL (Port could not be cast"),
    ("http://exa mple.com/billmgr", "--url must be an http(s) URL, not 'http://exa mple.com/"),
    ("https://example.com/billmgr#top", "--url must not hold credentials, a query or a fragment"),
    ("ftp://reseller:Pw-in-url@example.com/", "--url must not hold credentials"),
])
def test_modules_add_refuses_a_url_the_client_could_never_call(run, password_file, url, says):
    r = run("modules", "add", "up", "--type", "billmanager", "--url", url, "--username", "u",
            "--password-file", password_file)
    assert r.exit_code == USAGE, r
    assert says in r.stderr
    assert "Pw-in-url" not in r.stderr
    assert query(run.db_path, "SELECT count(*) FROM processingmodule") == [(0,)]


@pytest.mark.parametrize("username", ["a:b", "re seller", "a\nb", "a\x1b[2Jb"])
def test_modules_add_refuses_a_username_authinfo_cannot_carry(run, sim, password_file,
                                                              username):
    r = run("modules", "add", "up", "--type", "billmanager", "--url", sim.server.url,
            "--username", username, "--password-file", password_file)
    assert r.exit_code == USAGE, r
    assert f"--username must hold no ':', blank or control character, not {username!r}" in (
        r.stderr)
    assert query(run.db_path, "SELECT count(*) FROM processingmodule") == [(0,)]


def test_an_order_whose_sending_fails_on_a_setting_says_what_was_written(run, upstream,
                                                                         monkeypatch):
    monkeypatch.setenv("RESELLCTL_READ_TIMEOUT", "abc")
    r = run("order", "VDS-1", "--quantity", "3")
    assert r.exit_code == USAGE, r
    assert r.stderr.splitlines() == [
        "Error: RESELLCTL_READ_TIMEOUT must be a number of at least 0.1, not 'abc'",
        "The services are in the books, but operation(s) 1 to 3 may not have been sent. Send "
        "them with: resellctl ops list --status new -q | resellctl ops start -  (an order is "
        "never made twice upstream), or give them up: resellctl ops cancel ID..."]
    monkeypatch.delenv("RESELLCTL_READ_TIMEOUT")
    left = run("ops", "list", "--status", "new", "-q").stdout
    assert run("ops", "start", "-", input=left).exit_code == SUCCESS
    assert sorted(op["status"] for op in run_json(run, "ops", "list")) == ["waiting"] * 3

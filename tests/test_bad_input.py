"""Bad input anywhere: exit 2, one clear line on stderr, no traceback, nothing written or sent."""

import sqlite3

import pytest

from helpers import USERNAME, error_line

TABLES = ("processingmodule", "pricelist", "item", "runningoperation", "task", "itemhistory")
BIG = str(2**63)  # one past SQLite's largest integer

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
    # operations that may not be started
    (["ops", "start", "1"], "only failed or new operations can be started: operation 1 is done"),
    (["ops", "start", "2"], "operation 2 is waiting"),
    (["ops", "start", "2", "1"], "operation 2 is waiting; operation 1 is done"),
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
    assert run("order", "VDS-1").exit_code == 0
    assert run("checkevent").exit_code == 0
    assert run("order", "VDS-1").exit_code == 0
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

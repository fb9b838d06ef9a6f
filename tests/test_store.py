"""Where the store lives, how it is created, what happens with files that are not one, and a store
that cannot be written (a full disk, a read-only file, a lock held too long)."""

import os
import sqlite3

import pytest
from click.testing import CliRunner

from helpers import ERROR, SUCCESS, TEMPFAIL, USAGE, digest, mode, old_store, query, refused
from resellctl import schema
from resellctl import store as store_module
from resellctl.cli import App, cli
from resellctl.store import APPLICATION_ID, SCHEMA_VERSION, Store


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME and XDG_DATA_HOME inside tmp_path, RESELLCTL_DB unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("RESELLCTL_DB", raising=False)
    return home


def create(run, *db):
    result = run(*db, "modules", "add", "manual", "--type", "manual")
    assert result.exit_code == SUCCESS, result


def module_names(path):
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM processingmodule")]
    finally:
        conn.close()


# --- where -------------------------------------------------------------------------------------

def test_the_default_is_under_home_local_share(run, home):
    create(run)
    assert module_names(home / ".local/share/resellctl/resellctl.db") == ["manual"]


def test_xdg_data_home_moves_the_default(run, home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    create(run)
    assert module_names(tmp_path / "xdg/resellctl/resellctl.db") == ["manual"]
    assert not (home / ".local").exists()


def test_resellctl_db_beats_the_default_and_db_beats_both(run, home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RESELLCTL_DB", str(tmp_path / "env.db"))
    create(run)
    create(run, "--db", str(tmp_path / "flag.db"))
    assert module_names(tmp_path / "env.db") == ["manual"]
    assert module_names(tmp_path / "flag.db") == ["manual"]
    assert not (tmp_path / "xdg").exists()


# --- how ---------------------------------------------------------------------------------------

def test_a_new_store_is_private_whatever_the_umask(run, tmp_path):
    path = tmp_path / "private" / "resellctl.db"
    old = os.umask(0)
    try:
        create(run, "--db", str(path))
        store = Store.open(str(path))
        try:
            with store.write():  # the WAL and shared-memory files exist while it is open
                store.conn.execute("UPDATE processingmodule SET min_balance = '1'")
            companions = [f"{path}-wal", f"{path}-shm"]
            assert all(os.path.exists(p) for p in companions)
            assert [mode(p) & 0o077 for p in companions] == [0, 0]
        finally:
            store.close()
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_the_store_runs_in_wal_mode_with_its_schema_version(run):
    create(run)
    conn = sqlite3.connect(run.db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        conn.close()


def test_an_older_store_is_migrated_on_open_and_keeps_its_data(run, monkeypatch):
    create(run)

    def m_next(db):
        db["processingmodule"].add_column("note", str)

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, m_next])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    result = run("modules", "list", "--json")
    assert result.exit_code == SUCCESS, result
    assert '"name": "manual"' in result.stdout
    conn = sqlite3.connect(run.db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT name, note FROM processingmodule").fetchall() == [
            ("manual", None)]
    finally:
        conn.close()


def test_services_ordered_before_remoteids_had_a_store_uid_keep_their_bare_number(tmp_path):
    """A store of schema 2 ordered services with remoteid = the service number; after the
    migration they still match their upstream items by it, and new orders get the uid."""
    path = str(tmp_path / "old.db")
    old, _ = old_store(path, 2)
    old.execute("INSERT INTO item (id, client, itemtype, status) VALUES (17, 'a', 'vds', 2)")
    old.commit()
    old.close()
    store = store_module.Store.open(path)
    try:
        assert store.one("SELECT remoteid FROM item WHERE id = 17")[0] == "17"
        uid, number, random = store.remoteid(18).split("-")
        assert number == "18" and len(uid) == 8 and len(random) == 12
        # Two orders never share one, even under the same service number (a restored backup).
        assert store.remoteid(18) != store.remoteid(18)
    finally:
        store.close()


def test_the_engines_bookkeeping_moves_out_of_the_request_parameters(tmp_path):
    """Schema 3 kept the event log mark and a prolongation's baseline among the parameters it
    sends, and counted every try without a clear refusal as one that may have reached the
    upstream. A prolongation without a baseline never sent anything: it is safe to send."""
    path = str(tmp_path / "old.db")
    old, _ = old_store(path, 3)
    for statement in (
        "INSERT INTO runningoperation (id, item, operation, status, trycount, params) VALUES "
        "(1, 1, 'prolong', 'failed', 2, '{\"eventlog_mark\": 7, \"period\": 1}'), "
        "(2, 1, 'prolong', 'failed', 1, "
        "'{\"expiredate_before\": \"2027-01-01\", \"eventlog_mark\": 9, \"period\": 3}'), "
        "(3, 2, 'suspend', 'failed', 2, '{}'), (4, 3, 'open', 'failed', 1, '{}'), "
        "(5, 4, 'open', 'new', 0, '{}')",
        "INSERT INTO runningoperation_error (runningoperation, type) VALUES (3, 'transient'), "
        "(3, 'permanent'), (4, 'balance')",
    ):
        old.execute(statement)
    old.commit()
    old.close()
    store = store_module.Store.open(path)
    try:
        rows = {r["id"]: dict(r) for r in store.all(
            "SELECT id, params, eventlog_mark, baseline, reached FROM runningoperation")}
        assert rows[1] == {"id": 1, "params": '{"period": 1}', "eventlog_mark": 7,
                           "baseline": None, "reached": 0}
        assert rows[2] == {"id": 2, "params": '{"period": 3}', "eventlog_mark": 9,
                           "baseline": "2027-01-01", "reached": 1}
        assert [rows[n]["reached"] for n in (3, 4, 5)] == [1, 0, 0]
    finally:
        store.close()


def test_history_written_before_who_was_kept_names_no_one(run, upstream):
    """A store from before ``who`` was kept: its history entries show none, and new ones name
    the user."""
    import json

    from resellctl.cli.common import who

    assert run("order", "VDS-1").exit_code == SUCCESS
    conn = sqlite3.connect(run.db_path)
    conn.execute("ALTER TABLE itemhistory DROP COLUMN who")
    # Nor what later schemas added.
    for statement in ("DROP TABLE syncrun", "DROP TABLE notice", "DROP INDEX eventlog_unknown",
                      "DROP INDEX eventlog_rejected"):
        conn.execute(statement)
    before = schema.MIGRATIONS.index(schema.m007_history_who)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.commit()
    conn.close()
    assert run("services", "suspend", "1").exit_code == USAGE  # not open yet: nothing written
    assert run("checkevent").exit_code == SUCCESS
    assert run("services", "suspend", "1").exit_code == SUCCESS
    history = json.loads(run("services", "show", "1", "--json").stdout)["history"]
    assert [h["who"] for h in history if h["source"] == "local"] == [None, None, who(), None]


# --- what is not a store -----------------------------------------------------------------------

def test_a_newer_store_is_refused_and_left_alone(run):
    create(run)
    conn = sqlite3.connect(run.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(run.db_path)
    refused(run("modules", "list"),
            f"has schema version {SCHEMA_VERSION + 1}, newer than this resellctl knows")
    assert digest(run.db_path) == before


def test_a_path_under_a_regular_file_is_refused(run, tmp_path):
    (tmp_path / "plain").write_text("a file\n")
    refused(run("--db", str(tmp_path / "plain" / "resellctl.db"), "init"),
            f"cannot create the store at {tmp_path}/plain/resellctl.db: "
            f"{tmp_path}/plain is not a directory")
    refused(run("--db", str(tmp_path / "plain" / "sub" / "resellctl.db"), "init"),
            "Not a directory")
    assert (tmp_path / "plain").read_text() == "a file\n"


def test_a_directory_is_refused(run, tmp_path):
    refused(run("--db", str(tmp_path), "modules", "list"), "is a directory")


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(run, tmp_path):
    path = tmp_path / "elsewhere" / "notes.txt"
    path.parent.mkdir()
    path.write_text("not a database, but precious\n" * 200)
    before = digest(path), mode(path)
    refused(run("--db", str(path), "modules", "list"), "is not a resellctl store")
    assert (digest(path), mode(path)) == before
    assert sorted(os.listdir(path.parent)) == ["notes.txt"]


@pytest.mark.parametrize("setup", [
    "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ada')",
    "PRAGMA application_id = 7",  # another application's mark, no tables yet
    "PRAGMA user_version = 3",
])
def test_an_sqlite_file_of_another_application_is_refused_and_left_alone(run, tmp_path, setup):
    path = tmp_path / "elsewhere" / "other.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(setup)
    conn.close()
    before = digest(path)
    refused(run("--db", str(path), "modules", "add", "x", "--type", "manual"),
            "is an SQLite database but not a resellctl store")
    assert digest(path) == before
    assert sorted(os.listdir(path.parent)) == ["other.db"]  # no -wal, no -journal


def test_an_empty_file_becomes_a_private_store(run, tmp_path):
    path = tmp_path / "new.db"
    path.touch(mode=0o644)
    create(run, "--db", str(path))
    assert module_names(path) == ["manual"]
    assert mode(path) == 0o600


def test_an_empty_file_reached_through_a_symlink_is_not_taken(run, tmp_path):
    """As `--db /dev/null` was: the target neither chmod'ed nor given a journal."""
    target = tmp_path / "elsewhere" / "empty"
    target.parent.mkdir()
    target.touch(mode=0o644)
    link = tmp_path / "link.db"
    link.symlink_to(target)
    refused(run("--db", link, "modules", "add", "manual", "--type", "manual"),
            f"{link} is a symbolic link")
    assert mode(target) == 0o644 and target.stat().st_size == 0
    assert sorted(os.listdir(target.parent)) == ["empty"]
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "link.db", "store"]


def test_a_file_that_is_not_a_regular_file_is_refused(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    link = tmp_path / "link.db"
    link.symlink_to(fifo)
    for db in (fifo, link):
        refused(run("--db", db, "modules", "add", "manual", "--type", "manual"),
                f"{db} is not a regular file")
    assert mode(fifo) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link.db", "store"]


def test_a_dangling_symlink_is_refused_and_its_target_not_created(run, tmp_path):
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "nowhere" / "resellctl.db")
    refused(run("--db", link, "modules", "add", "manual", "--type", "manual"),
            f"{link} is a symbolic link to {tmp_path}/nowhere/resellctl.db, which does not exist")
    assert not (tmp_path / "nowhere").exists()


# --- a store that cannot be written ------------------------------------------------------------


def _run_with_store(db_path, *args, prepare):
    """``resellctl ARGS`` on an App whose store connection ``prepare`` has set up first."""
    app = App(stdout_isatty=False, stderr_isatty=False)
    app.db_path = db_path
    prepare(app.store.conn)
    return CliRunner().invoke(cli, list(args), obj=app)


def test_a_full_disk_is_one_line_that_says_so_and_the_books_are_unchanged(run, upstream):
    def fill(conn):
        # The store may grow no further: SQLite answers as it does on a full disk.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    r = _run_with_store(run.db_path, "order", "VDS-1", "--quantity", "50", prepare=fill)
    assert r.exit_code == ERROR, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stderr.splitlines() == [
        f"Error: cannot write the store at {run.db_path}: the disk is full",
        "Free some space on it, then run the command again."]
    assert query(run.db_path, "SELECT count(*) FROM item") == [(0,)]
    assert not [req for req in upstream.requests if req["func"] == "vds.order.param"]


def test_a_read_only_store_is_one_line_not_a_traceback(run, upstream):
    r = _run_with_store(run.db_path, "modules", "add", "staff", "--type", "manual",
                        prepare=lambda conn: conn.execute("PRAGMA query_only = 1"))
    assert r.exit_code == ERROR, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert f"Error: cannot write the store at {run.db_path}: " in r.stderr
    assert "Check that the file and its directory are writable" in r.stderr


def test_a_store_locked_past_the_busy_timeout_exits_75(run, upstream, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(run.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        r = run("modules", "add", "staff", "--type", "manual")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert r.exit_code == TEMPFAIL, r
    assert "stayed locked by another resellctl process" in r.stderr
    assert "Run the command again in a moment." in r.stderr

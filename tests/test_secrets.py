"""The modules' passwords live in the secrets file beside the store, never in the books."""

import json
import os
import pty
import sqlite3
import sys

import pytest
from helpers import (ERROR, PASSWORD, SUCCESS, USERNAME, mode, old_store, query, read_terminal,
                     refused)
from resellctl.store import Store


def raw(path):
    """Every byte of the store's files, as `strings` would search them."""
    return b"".join(open(p, "rb").read() for p in (path, f"{path}-wal") if os.path.exists(p))


def secrets_of(db_path):
    with open(db_path + ".secrets") as f:
        return json.load(f)["passwords"]


def add_vds_up(run, sim, password_file, *more):
    return run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
               "--username", USERNAME, "--password-file", password_file, *more)


def test_the_password_is_kept_in_a_private_secrets_file_and_never_in_the_books(run, upstream):
    assert secrets_of(run.db_path) == {"1": PASSWORD}
    assert mode(run.db_path + ".secrets") == 0o600
    assert PASSWORD.encode() not in raw(run.db_path)
    conn = sqlite3.connect(run.db_path)
    assert conn.execute("SELECT name, password FROM processingmodule").fetchall() == [
        ("vds-up", None), ("manual", None)]
    conn.close()


def test_replacing_a_password_rewrites_the_secrets_file_whole(run, upstream, tmp_path):
    new = tmp_path / "new.pw"
    new.write_text("n3w-Pa55word\n")
    new.chmod(0o600)
    upstream.accounts[USERNAME].password = "n3w-Pa55word"
    assert add_vds_up(run, upstream, new, "--replace").exit_code == SUCCESS
    assert secrets_of(run.db_path) == {"1": "n3w-Pa55word"}
    assert mode(run.db_path + ".secrets") == 0o600
    assert sorted(os.listdir(os.path.dirname(run.db_path))) == [
        "resellctl.db", "resellctl.db.secrets"]  # no temporary file left behind
    assert run("tariffs", "import", "vds-up").exit_code == SUCCESS  # the new one is used


def test_the_migration_moves_the_passwords_out_of_the_books(tmp_path, run, sim):
    path = str(tmp_path / "old.db")
    conn, db = old_store(path, 3)  # which kept the password in the books
    db["processingmodule"].insert_all([
        {"id": 1, "name": "vds-up", "type": "billmanager", "url": sim.server.url,
         "username": USERNAME, "password": PASSWORD},
        {"id": 2, "name": "manual", "type": "manual"}])
    conn.commit()
    conn.close()
    assert PASSWORD.encode() in raw(path)

    result = run("--db", path, "tariffs", "import", "vds-up")  # migrates, then logs in with it
    assert result.exit_code == SUCCESS, result
    assert secrets_of(path) == {"1": PASSWORD}
    assert mode(path + ".secrets") == 0o600
    assert PASSWORD.encode() not in raw(path)  # blanked, not left in free space or the WAL
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT password FROM processingmodule").fetchall() == [(None,), (None,)]
    conn.close()


@pytest.fixture
def restored(run, upstream):
    """The store of `upstream`, as restored without its secrets file."""
    os.unlink(run.db_path + ".secrets")
    return upstream


def test_a_module_without_its_password_says_how_to_set_it_at_use(run, restored, password_file):
    hint = ("module 'vds-up' has no password in {path}.secrets (a store restored without its "
            "secrets file?): set it with resellctl modules edit vds-up --password-file F").format(
                path=os.path.realpath(run.db_path))
    result = run("order", "VDS-1")
    assert result.exit_code == ERROR and hint in result.stderr, result
    result = run("checkevent", "-q")
    assert result.exit_code == ERROR and hint in result.stderr, result
    # A setting that needs no password changes without one.
    result = run("modules", "edit", "vds-up", "--min-balance", "30")
    assert result.exit_code == SUCCESS, result
    assert not [q for q in restored.requests if q["func"] == "vds.order.param"]

    assert add_vds_up(run, restored, password_file, "--replace").exit_code == SUCCESS
    assert run("ops", "start", "1").exit_code == SUCCESS
    assert run("checkevent", "-q").exit_code == SUCCESS


def test_the_secrets_file_of_another_store_is_refused(run, upstream):
    path = run.db_path + ".secrets"
    with open(path) as f:
        document = json.load(f)
    document["store"] = "0badc0de"
    with open(path, "w") as f:
        json.dump(document, f)
    refused(run("tariffs", "import", "vds-up"),
            f"{os.path.realpath(path)} holds the passwords of another store")


def test_a_symlinked_secrets_file_is_neither_read_nor_written_through(
        run, upstream, password_file, tmp_path):
    target = tmp_path / "elsewhere.json"
    os.replace(run.db_path + ".secrets", target)
    before = target.read_text()
    os.symlink(target, run.db_path + ".secrets")
    refused(run("tariffs", "import", "vds-up"), ".secrets is a symbolic link")
    refused(add_vds_up(run, upstream, password_file, "--replace"), ".secrets is a symbolic link")
    assert target.read_text() == before


@pytest.mark.slow
def test_a_password_typed_at_a_terminal_is_not_echoed(db_path):
    typed = "Typed-Secret-42"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: resellctl on a terminal, as a sysadmin runs it
        os.execve(sys.executable, [sys.executable, "-m", "resellctl", "modules", "add", "up",
                                   "--type", "billmanager", "--url",
                                   "http://127.0.0.1:9/billmgr", "--username", "u",
                                   "--api", "events", "--password-stdin"],
                  dict(os.environ, RESELLCTL_DB=db_path))
    screen = read_terminal(terminal, b"Password: ")
    os.write(terminal, typed.encode() + b"\n")
    screen = read_terminal(terminal, b"added", screen)
    os.waitpid(pid, 0)
    os.close(terminal)
    assert b"module up (billmanager, dialect events) added" in screen, screen
    assert typed.encode() not in screen
    store = Store.open(db_path)
    try:
        assert store.password(store.module("up")) == typed
    finally:
        store.close()
    assert query(db_path, "SELECT password FROM processingmodule") == [(None,)]

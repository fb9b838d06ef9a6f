"""`resellctl backup`: a consistent, private copy of the store, without its passwords."""

import json
import os
import shutil
import sqlite3
import threading

import pytest
from helpers import ERROR, PASSWORD, SUCCESS, digest, mode, query, refused, tsv


def test_a_backup_is_private_checked_and_holds_no_password(run, upstream, tmp_path):
    copy = tmp_path / "backups" / "resellctl.db"
    copy.parent.mkdir()
    assert run("order", "VDS-1", "--client", "acme").exit_code == SUCCESS
    old = os.umask(0)
    try:
        result = run("backup", copy)
    finally:
        os.umask(old)
    assert result.exit_code == SUCCESS and result.stdout == "", result
    size = os.path.getsize(copy)
    assert result.stderr.splitlines() == [
        f"wrote {copy}: a copy of the store at {run.db_path}, {size} bytes, integrity check ok",
        f"it holds no password (they are in {run.db_path}.secrets; --with-secrets copies them)"]
    assert mode(copy) == 0o600
    assert PASSWORD.encode() not in copy.read_bytes()  # as `strings copy | grep` would look
    assert sorted(os.listdir(copy.parent)) == ["resellctl.db"]  # one file: no -wal, no temp
    assert query(copy, "PRAGMA integrity_check") == [("ok",)]
    assert query(copy, "PRAGMA journal_mode") == [("delete",)]
    assert query(copy, "SELECT client FROM item") == [("acme",)]


def test_with_secrets_the_passwords_go_to_a_private_file_beside_the_copy(
        run, upstream, tmp_path):
    copy = tmp_path / "copy.db"
    result = run("backup", copy, "--with-secrets")
    assert result.exit_code == SUCCESS, result
    assert f"wrote {copy}.secrets: the modules' passwords" in result.stderr
    assert mode(f"{copy}.secrets") == 0o600
    assert json.loads(open(f"{copy}.secrets").read())["passwords"] == {"1": PASSWORD}
    assert PASSWORD.encode() not in copy.read_bytes()


def test_a_backup_taken_while_a_writer_holds_a_transaction_has_only_what_was_committed(
        run, upstream, tmp_path):
    writer = sqlite3.connect(run.db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO processingmodule (name, type) VALUES ('half-done', 'manual')")
    try:
        result = run("backup", tmp_path / "copy.db")
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert result.exit_code == SUCCESS, result
    assert query(tmp_path / "copy.db", "SELECT name FROM processingmodule ORDER BY id") == [
        ("vds-up",), ("manual",)]


def test_a_backup_taken_while_cron_commits_is_one_consistent_state(run, upstream, tmp_path):
    """Each of the writer's transactions adds two history rows; a copy that caught half of
    one, or pages of two different moments, would show an odd count or fail its check."""
    assert run("modules", "add", "m2", "--type", "manual").exit_code == SUCCESS
    stop, busy = threading.Event(), threading.Event()
    commits = []

    def write():
        conn = sqlite3.connect(run.db_path, isolation_level=None, timeout=30)
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(2):
                conn.execute("INSERT INTO itemhistory (item, message) VALUES (1, ?)",
                             ("x" * 2000,))
            conn.execute("COMMIT")
            commits.append(1)
            if len(commits) == 20:
                busy.set()
        conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert busy.wait(timeout=60)
        results = []
        for n in range(3):
            committed = len(commits)
            results.append((committed, run("backup", tmp_path / f"copy{n}.db")))
    finally:
        stop.set()
        thread.join()
    for n, (committed, result) in enumerate(results):
        assert result.exit_code == SUCCESS, result
        [(rows,)] = query(tmp_path / f"copy{n}.db", "SELECT count(*) FROM itemhistory")
        # Even, and every commit made before it began (most still in the -wal file, which a
        # copy of the database file alone would miss).
        assert rows % 2 == 0 and rows >= 2 * committed, (rows, committed)


def test_an_existing_file_is_replaced_only_with_force(run, upstream, tmp_path):
    copy = tmp_path / "copy.db"
    copy.write_text("last week's\n")
    copy.chmod(0o644)
    refused(run("backup", copy), f"{copy} exists already")
    assert copy.read_text() == "last week's\n"
    assert run("backup", copy, "--force").exit_code == SUCCESS
    assert mode(copy) == 0o600 and query(copy, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "--force"])
def test_a_symlink_target_is_refused_and_what_it_points_to_untouched(run, upstream, tmp_path,
                                                                     force):
    precious = tmp_path / "precious"
    precious.write_text("not a backup\n")
    link = tmp_path / "copy.db"
    link.symlink_to(precious)
    refused(run("backup", link, *force), f"{link} is a symbolic link")
    assert precious.read_text() == "not a backup\n" and link.is_symlink()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.db")
    refused(run("backup", tmp_path / "dangling.db", *force), "is a symbolic link")
    assert not (tmp_path / "nowhere").exists()


def test_the_store_itself_is_no_place_for_its_backup(run, upstream):
    before = digest(run.db_path)
    for target in (run.db_path, run.db_path + ".secrets", run.db_path + ".lock"):
        refused(run("backup", target, "--force"), "is a file of the store itself")
    assert digest(run.db_path) == before


def test_a_store_restored_from_a_backup_and_its_secrets_takes_up_where_it_was(
        run, upstream, tmp_path):
    sim = upstream
    assert run("order", "VDS-1", "--client", "acme").exit_code == SUCCESS
    copy = str(tmp_path / "copy.db")
    assert run("backup", copy, "--with-secrets").exit_code == SUCCESS
    sim.open_pending()
    assert run("checkevent", "-q").exit_code == SUCCESS
    # The store is lost; the copy and its secrets come back.
    for suffix in ("", "-wal", "-shm", ".secrets"):
        if os.path.exists(run.db_path + suffix):
            os.unlink(run.db_path + suffix)
    for suffix in ("", ".secrets"):
        shutil.copy(copy + suffix, run.db_path + suffix)
    assert tsv(run("services", "list").stdout)[0]["status"] == "5"  # processing, as copied
    result = run("checkevent")  # the upstream still has the events after the copy's position
    assert result.exit_code == SUCCESS and result.stderr == "", result
    assert tsv(run("services", "list").stdout)[0]["status"] == "2"


def test_a_copy_that_fails_on_the_way_is_a_failure_and_leaves_nothing(run, upstream, tmp_path):
    """A write that fails while the copy is made (here past a file size limit, as on a disk
    that fills): exit 1, what to do, and no copy, whole or half."""
    import resource
    import signal
    import subprocess
    import sys

    upstream.topup("1000.00")
    assert run("order", "VDS-1", "--quantity", "60").exit_code == SUCCESS
    assert os.path.getsize(run.db_path) > 64 * 1024
    (tmp_path / "backups").mkdir()
    copy = tmp_path / "backups" / "copy.db"

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))

    r = subprocess.run([sys.executable, "-m", "resellctl", "--db", run.db_path, "backup", copy],
                       capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert r.returncode == ERROR, r
    # SQLite meets a file too large as an I/O error (a full disk: "the disk is full").
    assert r.stderr == (f"Error: cannot write the backup {copy}: disk I/O error\n"
                        "Nothing was written. Free some space there, or choose another place, "
                        "and run it again.\n"), r.stderr
    assert os.listdir(tmp_path / "backups") == []


def test_an_empty_path_is_bad_input(run, upstream):
    refused(run("backup", ""), "the backup's path is empty")

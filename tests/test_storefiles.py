"""The files beside the store: never opened through a link, never another user's."""

import os

import pytest

from helpers import PASSWORD, SUCCESS, USAGE, USERNAME, mode, refused

PRECIOUS = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def precious(tmp_path):
    """A file that the root cron job must never write: the target of planted links."""
    path = tmp_path / "precious"
    path.write_text(PRECIOUS)
    path.chmod(0o644)
    return path


def untouched(path):
    assert path.read_text() == PRECIOUS and mode(path) == 0o644


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hardlink"])
def test_a_planted_lock_file_is_refused_and_its_target_untouched(run, upstream, precious,
                                                                 plant):
    plant(precious, run.db_path + ".lock")
    result = run("checkevent", "-q")
    refused(result, f"{run.db_path}.lock is a symbolic link" if plant is os.symlink
            else f"{run.db_path}.lock has other hard links")
    assert "mv " in result.stderr  # the way out
    untouched(precious)


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hardlink"])
def test_a_planted_sending_file_is_refused_and_its_target_untouched(run, upstream, precious,
                                                                    plant):
    plant(precious, run.db_path + ".sending")
    result = run("order", "VDS-1")
    assert result.exit_code == USAGE, result
    error, move_it, unsent = result.stderr.splitlines()
    assert error.startswith(f"Error: {run.db_path}.sending "), result
    assert move_it.startswith(f"Move it out of the way (mv {run.db_path}.sending "), result
    assert "resellctl ops start -" in unsent  # the order is in the books, unsent
    assert not [q for q in upstream.requests if q["func"] == "vds.order.param"]
    untouched(precious)


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hardlink"])
def test_a_planted_file_sqlite_opens_beside_the_store_is_refused_and_its_target_untouched(
        run, upstream, precious, plant, suffix):
    plant(precious, run.db_path + suffix)
    refused(run("checkevent", "-q"), f"{run.db_path}{suffix} ")
    untouched(precious)


def test_a_dangling_symlink_is_not_followed_to_create_its_target(run, upstream, tmp_path):
    target = tmp_path / "created-by-root"
    os.symlink(target, run.db_path + ".lock")
    refused(run("checkevent"), "is a symbolic link")
    assert not target.exists()


def test_a_lock_file_that_is_a_fifo_is_refused(run, upstream):
    os.mkfifo(run.db_path + ".lock")
    refused(run("checkevent"), f"{run.db_path}.lock is not a regular file")


def test_a_store_reached_through_a_symlink_keeps_its_lock_beside_the_real_file(
        run, upstream, tmp_path):
    link = tmp_path / "link.db"
    os.symlink(run.db_path, link)
    assert run("--db", link, "checkevent", "-q").exit_code == SUCCESS
    assert os.path.isfile(run.db_path + ".lock") and not os.path.lexists(f"{link}.lock")


# --- files others may read ---------------------------------------------------------------------

def test_a_store_others_may_read_is_used_with_one_warning_saying_how_to_fix_it(run, upstream):
    os.chmod(run.db_path, 0o644)  # as a restored backup may be
    result = run("ops", "list")
    assert result.exit_code == SUCCESS and result.stdout.startswith("id\t"), result
    path = run.db_path
    assert result.stderr.splitlines() == [
        f"warning: other users may read the store: {path} (mode 0644), {path}-wal (mode 0644), "
        f"{path}-shm (mode 0644)",
        f"  fix it with: chmod 600 {path} {path}-wal {path}-shm"]
    result = run("order", "VDS-1")  # many reads and writes, one warning
    assert result.exit_code == SUCCESS, result
    assert result.stderr.count("warning: other users may read the store") == 1
    os.chmod(path, 0o600)  # the -wal and -shm go with the last connection, and come back 0600
    assert run("ops", "list").stderr == ""


def test_a_password_file_every_user_may_read_gets_a_warning(run, sim, tmp_path):

    path = tmp_path / "open.pw"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o644)
    result = run("modules", "add", "vds-up", "--type", "billmanager", "--url", sim.server.url,
                 "--username", USERNAME, "--password-file", path)
    assert result.exit_code == SUCCESS, result
    assert result.stderr.splitlines() == [
        f"warning: every user may read the password file {path} (mode 0644)",
        f"  fix it with: chmod 600 {path}",
        "module vds-up (billmanager, dialect events) added"]


def test_a_secrets_file_others_may_read_gets_the_warning_too(run, upstream):
    secrets = run.db_path + ".secrets"
    os.chmod(secrets, 0o640)
    result = run("modules", "list")
    assert result.exit_code == SUCCESS, result
    assert result.stderr.splitlines() == [
        f"warning: other users may read the store: {secrets} (mode 0640)",
        f"  fix it with: chmod 600 {secrets}"]


def test_a_store_that_cannot_be_opened_is_not_called_foreign(run, upstream):
    # Something that cannot be the write-ahead log is where SQLite would open it.
    os.mkdir(run.db_path + "-wal")
    r = run("ops", "list")
    assert r.exit_code == USAGE, r
    assert "not a resellctl store" not in r.stderr
    assert f"{run.db_path}-wal is not a regular file: resellctl does not use it" in r.stderr

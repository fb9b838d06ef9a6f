"""The files beside the store: never opened through a link, never another user's."""

import os

import pytest

from tests.test_store import mode, refused

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
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result
    assert result.stderr.startswith(f"Error: {run.db_path}.sending "), result
    assert "resellctl ops start -" in result.stderr  # the order is in the books, unsent
    assert not [q for q in upstream.requests if q["func"] == "vds.order.param"]
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
    assert run("--db", link, "checkevent", "-q").exit_code == 0
    assert os.path.isfile(run.db_path + ".lock") and not os.path.lexists(f"{link}.lock")

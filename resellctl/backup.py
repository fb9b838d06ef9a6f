"""A consistent copy of the store, safe to take while cron writes to it.

A plain ``cp`` of a store in WAL mode may copy the database file between two checkpoints and
miss (or tear) what the -wal file holds. SQLite's online backup API reads one consistent state
through SQLite itself, however other processes write meanwhile. The copy is a new file of mode
0600 that takes the target's place only once it is complete and has passed
``PRAGMA integrity_check``. It holds no password: those stay in the secrets file beside the
store, and go to ``<copy>.secrets`` only when asked.
"""

import os
import sqlite3
import stat

from resellctl.errors import ResellError, StoreError
from resellctl.store import connect
from resellctl.storefiles import SECRETS, beside, replacing, write_secrets

# The store's own files: a backup must never take the place of one of them.
_COMPANIONS = ("", "-wal", "-shm", SECRETS, ".lock", ".sending")


def backup(store, target, force=False, with_secrets=False):
    """Copy ``store`` to ``target`` (and its passwords to ``target.secrets`` if asked); the
    copy's size in bytes. StoreError, with nothing written, for a target that exists (unless
    ``force``), is a symbolic link or is one of the store's own files."""
    targets = [target, target + SECRETS] if with_secrets else [target]
    ours = {beside(store.path, suffix) for suffix in _COMPANIONS}
    for path in targets:
        _check_target(path, ours, force)
    with replacing(target) as (temporary, _):
        copy = connect(temporary)
        try:
            store.conn.backup(copy)
            # One self-contained file, as a copy should be (the store runs in WAL mode).
            copy.execute("PRAGMA journal_mode = DELETE")
            problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        except sqlite3.Error as e:
            # The target was fine; the copy failed on the way (a full disk, say): a failure,
            # not a mistake in the command.
            full = (e.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_FULL
            raise ResellError(f"cannot write the backup {target}: "
                              f"{'the disk is full' if full else e}",
                              "Nothing was written. Free some space there, or choose another "
                              "place, and run it again.") from None
        finally:
            copy.close()
        if problems != ["ok"]:
            raise ResellError(f"the copy of the store failed its integrity check: {problems[0]}",
                              "Nothing was written. Check the store itself: sqlite3 "
                              f"{store.path} 'PRAGMA integrity_check'")
        size = os.path.getsize(temporary)
    if with_secrets:
        write_secrets(target + SECRETS, *store.read_passwords())
    return size


def _check_target(path, ours, force):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if os.path.realpath(path) in ours:
        raise StoreError(f"{path} is a file of the store itself, not a place for its backup")
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"{path} is a symbolic link: a backup is written only as a file of its "
                         "own", "Name the file itself, not a link to it.")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} exists and is not a regular file")
    if not force:
        raise StoreError(f"{path} exists already", "Choose another name, or replace it with "
                         "--force.")

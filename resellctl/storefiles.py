"""The files resellctl keeps beside its store (``<store>.lock``, ``<store>.sending``, ...).

Anyone who can write the store's directory can put a symbolic link or a hard link there under
one of these names; root's cron job would then truncate or write the file it points to. So
each is opened without following links, and used only if it is a regular file with one link,
owned by this user or by the owner of its directory. This module knows nothing of click.
"""

import errno
import os
import shlex
import stat

from resellctl.errors import StoreError


def beside(store_path, suffix):
    """The path of the store's companion ``suffix``: beside the file SQLite opens, which is
    where its -wal and -shm are too (a store reached through a symbolic link has them beside
    the file the link names)."""
    return os.path.realpath(store_path) + suffix


def open_private(path, flags=os.O_RDWR | os.O_CREAT):
    """Open a companion file of the store (created with mode 0600); its descriptor.

    StoreError, with the file left untouched, if ``path`` is a symbolic link, or not a regular
    file with a single link owned by this user or by the owner of its directory.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP and os.path.islink(path):
            _refuse(path, "is a symbolic link")
        raise StoreError(f"cannot open {path}: {e.strerror}") from None
    problem = unsafe(os.fstat(fd), path)
    if problem:
        os.close(fd)
        _refuse(path, problem)
    return fd


def unsafe(st, path):
    """Why the file ``st`` (found at ``path``) is not one resellctl may write, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink != 1:
        return "has other hard links"
    if st.st_uid != os.geteuid():
        owner = os.stat(os.path.dirname(os.path.abspath(path))).st_uid
        if st.st_uid != owner:
            return f"belongs to another user (uid {st.st_uid})"
    return None


def _refuse(path, problem):
    raise StoreError(f"{path} {problem}: resellctl does not use it",
                     f"Move it out of the way (mv {shlex.quote(path)} "
                     f"{shlex.quote(path + '.suspect')}) and run the command again.")

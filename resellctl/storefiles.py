"""The files resellctl keeps beside its store: ``<store>.lock``, ``<store>.sending`` and
``<store>.secrets``, the modules' passwords, kept out of the books so that no copy of the
books carries them.

Anyone who can write the store's directory can put a symbolic link or a hard link there under
one of these names; root's cron job would then truncate or write the file it points to. So
each is opened without following links, and used only if it is a regular file with one link,
owned by this user or by the owner of its directory. Files that hold secrets are written whole:
a new file of mode 0600 renamed into place. This module knows nothing of click.
"""

import contextlib
import errno
import json
import os
import secrets
import shlex
import stat

from resellctl.errors import StoreError

SECRETS = ".secrets"


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
    except FileNotFoundError:
        if flags & os.O_CREAT:
            raise StoreError(f"cannot create {path}: its directory does not exist") from None
        raise
    except OSError as e:
        if e.errno == errno.ELOOP and os.path.islink(path):
            _refuse(path, "is a symbolic link")
        raise StoreError(f"cannot open {path}: {e.strerror}") from None
    problem = _unsafe(os.fstat(fd), path)
    if problem:
        os.close(fd)
        _refuse(path, problem)
    return fd


def check_companion(path):
    """StoreError if the file at ``path``, one that SQLite opens by name beside the store (its
    -wal, -shm or -journal), is not one resellctl may write; none there is fine. SQLite refuses
    a symbolic link there itself, but writes through a hard link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    problem = "is a symbolic link" if stat.S_ISLNK(st.st_mode) else _unsafe(st, path)
    if problem:
        _refuse(path, problem)


def _unsafe(st, path):
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


@contextlib.contextmanager
def replacing(path):
    """A new file of mode 0600 that takes ``path``'s place once the block ends without error:
    yields ``(its temporary path, an open descriptor of it)``. On error it is removed and
    ``path`` left as it was. A link at ``path`` is replaced, never followed."""
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror}") from None
    try:
        yield temporary, fd
        os.fsync(fd)
        os.replace(temporary, path)
        # The rename itself must survive a crash too.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(e, OSError):
            raise StoreError(f"cannot write {path}: {e.strerror}") from None
        raise
    finally:
        os.close(fd)


def read_secrets(path, uid):
    """The passwords in the secrets file ``path`` of the store ``uid``: ``{module id (str):
    password}``, empty if there is no such file; StoreError for another store's file or one
    that is not a secrets file."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    try:
        document = json.loads(data)
        passwords = document["passwords"]
        if not isinstance(passwords, dict) or not all(
                isinstance(v, str) for v in passwords.values()):
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise StoreError(f"{path} is not a resellctl secrets file") from None
    if document.get("store") != uid:
        raise StoreError(f"{path} holds the passwords of another store",
                         "Move it away, then give each billmanager module its password again: "
                         "resellctl modules edit NAME --password-file F")
    return passwords


def write_secrets(path, uid, passwords):
    """Write ``passwords`` (``{module id (str): password}``) of the store ``uid`` as the
    secrets file ``path``, whole (see replacing())."""
    data = json.dumps({"store": uid, "passwords": passwords}, indent=1, sort_keys=True)
    with replacing(path) as (_, fd):
        rest = memoryview((data + "\n").encode())
        while rest:
            rest = rest[os.write(fd, rest):]

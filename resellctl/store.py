"""The reseller's books: one SQLite file, its schema, migrations and transactions.

The file is created only when asked (``resellctl init``), as a new regular file of mode 0600,
runs in WAL mode with a busy timeout, and is marked as ours with SQLite's ``application_id`` so
that a file that is not a resellctl store is refused instead of being written into.
``PRAGMA user_version`` is the schema version; the migrations of schema.py bring an older store
up to date on open. The modules' passwords are not in it but in the secrets file beside it
(storefiles.py), so that no copy of the books carries them.

Writes go through ``Store.write()``: ``BEGIN IMMEDIATE`` ... ``COMMIT``, short, and never
around an HTTP call. This module knows nothing of click, rich or the HTTP client.
"""

import contextlib
import datetime
import os
import secrets
import re
import sqlite3
import stat
import urllib.parse

from resellctl import errors
from resellctl.errors import InputError, LockHeld, ResellError, StoreError, UpstreamError
from resellctl.schema import MIGRATIONS, STAMP, TIME_COLUMNS  # noqa: F401 (theirs to import)
from resellctl.storefiles import (SECRETS, beside, check_companion, open_private, read_secrets,
                                  write_secrets)

APPLICATION_ID = 0x52534C43  # "RSLC"
BUSY_TIMEOUT_MS = 10_000
MAX_ID = 2**63 - 1  # SQLite's largest integer
SCHEMA_VERSION = len(MIGRATIONS)


def now(before=None):
    """The current time as the store writes it, in UTC: ``2026-12-01T05:00:27Z``.
    ``before``: a timedelta to go back by (``now(datetime.timedelta(days=7))``)."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    return (moment - before if before else moment).strftime(STAMP)


def when(stamp):
    """A time as the store writes it (``now()``), as an aware datetime in UTC; None for
    anything else."""
    try:
        return datetime.datetime.strptime(stamp, STAMP).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


class MissingPassword(UpstreamError):
    """A billmanager module whose password is not in the secrets file (a store restored
    without it). An upstream error of kind auth, as a refused login is: the operation fails
    with this reason, and checkevent reports the module and goes on with the others."""

    def __init__(self, name, path):
        super().__init__(errors.AUTH, (
            f"module {name!r} has no password in {path} (a store restored without its secrets "
            f"file?): set it with resellctl modules edit {name} --password-file F"),
            type="no_password")


class NoStore(StoreError):
    """Nothing at the store's path (or an empty file): ``resellctl init`` makes a store."""


def _existing(path):
    """The status of the file at ``path`` (through links), or None when there is none;
    StoreError for something that cannot be a store: only a regular file is one."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise StoreError(f"{path} is a symbolic link to {os.readlink(path)}, which does "
                             "not exist") from None
        return None
    except OSError as e:
        raise StoreError(f"cannot open the store at {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is a directory, not a resellctl store")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file: it cannot be a resellctl store")
    return st


def _create_file(path):
    """Make ``path`` a new store file of mode 0600 (never chmod after: no window for others).

    An empty regular file made there by hand is taken and made private, but never one reached
    through a symbolic link: only a regular file may become a store.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        return
    except FileExistsError as e:
        if e.filename == path:
            fd = open_private(path, os.O_WRONLY)
            try:
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            return
        # makedirs found a regular file where a directory should be.
        reason = f"{e.filename} is not a directory"
    except OSError as e:
        reason = e.strerror
    raise StoreError(f"cannot create the store at {path}: {reason}",
                     "Choose another place with --db PATH or RESELLCTL_DB.")


def connect(path):
    """A connection to the existing file ``path``: SQLite itself never creates a store."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


# SQLite's primary result codes that say the file cannot be used now, rather than a bug.
_UNUSABLE = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL,
             sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
             sqlite3.SQLITE_PERM}


def _unusable(path, verb, error):
    """The ResellError for a store that cannot be opened or written, with what to do."""
    code = error.sqlite_errorcode & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return LockHeld(f"the store at {path} stayed locked by another resellctl process for "
                        f"{BUSY_TIMEOUT_MS // 1000} s", "Run the command again in a moment.")
    if code == sqlite3.SQLITE_FULL:
        return ResellError(f"cannot {verb} the store at {path}: the disk is full",
                           "Free some space on it, then run the command again.")
    return ResellError(f"cannot {verb} the store at {path}: {error}",
                       "Check that the file and its directory are writable and that the disk "
                       "has free space, then run the command again.")


class Store:
    """An open store: ``conn`` for queries, ``write()`` for transactions."""

    def __init__(self, conn, path, created=False):
        self.conn = conn
        self.path = path
        self.created = created
        self._passwords = None  # the secrets file, read on first use

    @classmethod
    def open(cls, path, migrate=True, create=False):
        """Open the store at ``path``; NoStore if there is none.

        With ``create``, a new store is made there if there is none (``created`` says so).
        ``migrate=False`` leaves an existing store of an older schema as it is.
        """
        st = _existing(path)
        created = st is None or st.st_size == 0
        if created:
            if not create:
                raise NoStore(f"no resellctl store at {path}" + (" (an empty file)" if st else ""))
            _create_file(path)
        for suffix in ("-wal", "-shm", "-journal"):
            check_companion(beside(path, suffix))
        try:
            conn = connect(path)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != APPLICATION_ID:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                # Only a truly blank database is ours to take: no tables, and no mark of
                # another application in its header.
                if tables or app_id or version:
                    conn.close()
                    raise StoreError(f"{path} is an SQLite database but not a resellctl store",
                                     "Point --db at a resellctl store or a new file.")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # A backlog of events commits a page at a time; a checkpoint every 1,000 pages of
            # WAL (the default) copied the same index pages back again and again. The WAL
            # still ends at the last close, and stays under some 40 MB meanwhile.
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
        except sqlite3.OperationalError as e:
            raise _unusable(path, "open", e) from None
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path} is not a resellctl store ({e})") from None
        except OSError as e:
            raise StoreError(f"cannot open the store at {path}: {e.strerror}") from None
        store = cls(conn, path, created)
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"{path} has schema version {version}, newer than this resellctl knows "
                f"({SCHEMA_VERSION})", "Upgrade resellctl to use this store.")
        if version < SCHEMA_VERSION and (migrate or created):
            store._migrate(version)
        return store

    def _migrate(self, version):
        import sqlite_utils

        db = sqlite_utils.Database(self.conn)
        with self.write():
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                step(db)
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # A migration may have blanked data (the passwords): keep no old copy in the WAL.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextlib.contextmanager
    def write(self):
        """A write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error.

        A store that cannot be written (a full disk, a read-only file, held by another process
        past the busy timeout) raises a ResellError that says so.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                # SQLite may have rolled back already (a full disk does).
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if (e.sqlite_errorcode & 0xFF) not in _UNUSABLE:
                raise
            raise _unusable(self.path, "write", e) from None

    def close(self):
        self.conn.close()

    def exposed(self):
        """The store's files that other users may reach: ``[(path, mode)]``. A restored backup
        is often 0644, and SQLite gives the -wal and -shm files the store's own mode."""
        found = []
        for suffix in ("", "-wal", "-shm", SECRETS):
            path = beside(self.path, suffix)
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except FileNotFoundError:
                continue
            if mode & 0o077:
                found.append((path, mode))
        return found

    # -- the modules' passwords, kept in the secrets file beside the store ---------------------

    @property
    def secrets_path(self):
        return beside(self.path, SECRETS)

    def read_passwords(self):
        """The secrets file as it is now: ``(store uid, {module id (str): password})``."""
        uid = self.one("SELECT value FROM store_meta WHERE key = 'uid'")[0]
        self._passwords = read_secrets(self.secrets_path, uid)
        return uid, self._passwords

    def password(self, module):
        """The password of the billmanager module ``module`` (a row); MissingPassword if the
        secrets file has none for it."""
        if self._passwords is None:
            self.read_passwords()
        password = self._passwords.get(str(module["id"]))
        if password is None:
            raise MissingPassword(module["name"], self.secrets_path)
        return password

    def set_password(self, module_id, password):
        """Keep ``password`` as the password of module ``module_id`` (None: it has none).
        Call it inside write(), so that writers of the secrets file take turns."""
        uid, passwords = self.read_passwords()
        if passwords.get(str(module_id)) == password:
            return
        passwords = {k: v for k, v in passwords.items() if k != str(module_id)}
        if password is not None:
            passwords[str(module_id)] = password
        write_secrets(self.secrets_path, uid, passwords)
        self._passwords = passwords

    # -- small queries shared by the engines -------------------------------------------------

    def one(self, sql, params=()):
        """The first row of a query, or None."""
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    def module(self, ref):
        """A processing module by name or numeric id; InputError if there is none."""
        row = self.one("SELECT * FROM processingmodule WHERE name = ?", (str(ref),))
        if row is None and (number := _row_id(ref)) is not None:
            row = self.one("SELECT * FROM processingmodule WHERE id = ?", (number,))
        if row is None:
            names = ", ".join(r[0] for r in self.all(
                "SELECT name FROM processingmodule ORDER BY id")) or "none yet"
            raise InputError(f"no processing module {ref!r} (known: {names})",
                             "Add one with: resellctl modules add NAME --type ...")
        return row

    def tariff(self, ref):
        """A tariff by name or numeric id; InputError if unknown or ambiguous.

        An int is always an id (the books' references): tariff names are the upstream's, and
        one may well be "1".
        """
        if isinstance(ref, int):
            row = self.one("SELECT * FROM pricelist WHERE id = ?", (ref,))
            if row is None:
                raise InputError(f"no tariff {ref}", "See `resellctl tariffs list`.")
            return row
        rows = self.all("SELECT * FROM pricelist WHERE name = ?", (str(ref),))
        if not rows and (number := _row_id(ref)) is not None:
            rows = self.all("SELECT * FROM pricelist WHERE id = ?", (number,))
        if not rows:
            raise InputError(f"no tariff {ref!r}",
                             "See `resellctl tariffs list`, or import them with "
                             "`resellctl tariffs import MODULE`.")
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise InputError(f"tariff name {ref!r} is ambiguous (ids {ids}): give its id")
        return rows[0]

    def tariff_periods(self, tariff_id):
        """A tariff's prices: ``{months: cost}``, shortest first."""
        return {r["length"]: r["cost"] for r in self.all(
            "SELECT length, cost FROM pricelist_period WHERE pricelist = ? ORDER BY length",
            (tariff_id,))}

    def tariff_addons(self, tariff_id):
        """A tariff's resources: ``{intname: row}`` (remote_id, value, measure)."""
        return {r["intname"]: r for r in self.all(
            "SELECT * FROM pricelist_addon WHERE pricelist = ? ORDER BY intname", (tariff_id,))}

    def item(self, item_id):
        row = self.one("SELECT * FROM item WHERE id = ?", (as_id(item_id, "service"),))
        if row is None:
            raise InputError(f"no service {item_id}", "See `resellctl services list`.")
        return row

    def operation(self, op_id):
        row = self.one("SELECT * FROM runningoperation WHERE id = ?",
                       (as_id(op_id, "operation"),))
        if row is None:
            raise InputError(f"no operation {op_id}", "See `resellctl ops list`.")
        return row

    def task(self, task_id):
        row = self.one("SELECT * FROM task WHERE id = ?", (as_id(task_id, "task"),))
        if row is None:
            raise InputError(f"no task {task_id}", "See `resellctl tasks list`.")
        return row

    def remoteid(self, item_id):
        """The ``remoteid`` a new service's order carries, for all its tries:
        ``<store uid>-<service number>-<random>``.

        The random part keeps two orders apart even where the store and the number repeat: a
        store restored from a backup, or a copy on a staging host, numbers its next services
        as it did before, and an upstream that knows the remoteid answers ``exists`` with
        another customer's service.
        """
        uid = self.one("SELECT value FROM store_meta WHERE key = 'uid'")[0]
        return f"{uid}-{item_id}-{secrets.token_hex(6)}"

    def add_history(self, item_id, message, source="local", event=None, runningoperation=None,
                    date=None, who=None):
        self.conn.execute(
            "INSERT INTO itemhistory (item, date, source, event, runningoperation, message, who) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, date or now(), source, event, runningoperation, message, who))


def _row_id(ref):
    """``ref`` as a row id when it is one, in ASCII digits from 1 to MAX_ID; else None (a name).

    Not ``str.isdigit()``: it takes "²", which int() refuses.
    """
    text = str(ref)
    if not re.fullmatch(r"[0-9]{1,19}", text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def as_id(value, what):
    """``value`` as the id of a row of kind ``what``; InputError unless a whole number from 1 to
    MAX_ID, in ASCII digits (int() would also take "1_0" and "²")."""
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+", text):
        raise InputError(f"{what} id must be a number, not {value!r}")
    number = int(text)
    if number <= 0:
        raise InputError(f"{what} id must be positive, not {value}")
    if number > MAX_ID:
        raise InputError(f"{what} id must be at most {MAX_ID}, not {value}")
    return number

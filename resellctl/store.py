"""The reseller's books: one SQLite file, its schema, migrations and transactions.

The file is created only when asked (``resellctl init``), as a new regular file of mode 0600,
runs in WAL mode with a busy timeout, and is marked as ours with SQLite's ``application_id`` so
that a file that is not a resellctl store is refused instead of being written into.
``PRAGMA user_version`` is the schema version; the migrations below bring an older store up to
date on open. The modules' passwords are not in it but in the secrets file beside it
(storefiles.py), so that no copy of the books carries them.

Writes go through ``Store.write()``: ``BEGIN IMMEDIATE`` ... ``COMMIT``, short, and never
around an HTTP call. This module knows nothing of click, rich or the HTTP client.
"""

import contextlib
import datetime
import json
import os
import secrets
import re
import sqlite3
import stat
import urllib.parse

from resellctl import errors
from resellctl.errors import InputError, LockHeld, ResellError, StoreError, UpstreamError
from resellctl.storefiles import (SECRETS, beside, check_companion, open_private, read_secrets,
                                  write_secrets)

APPLICATION_ID = 0x52534C43  # "RSLC"
BUSY_TIMEOUT_MS = 10_000
MAX_ID = 2**63 - 1  # SQLite's largest integer
STAMP = "%Y-%m-%dT%H:%M:%SZ"  # how the store writes a time: UTC, ISO 8601

MIGRATIONS = []


def migration(fn):
    """Register a schema migration; its position in the list is the version it brings."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db):
    """The tables of the domain (docs/architecture.md), named as BILLmanager names them."""
    db["processingmodule"].create({
        "id": int, "name": str, "type": str, "url": str, "username": str, "password": str,
        "datacenter": str, "min_balance": str, "auto_rerun": int, "balance": str,
        "currency": str, "balance_date": str, "event_cursor": int, "cdate": str,
    }, pk="id", not_null={"name", "type"}, defaults={"auto_rerun": 1, "event_cursor": 0})
    db["processingmodule"].create_index(["name"], unique=True)

    db["pricelist"].create({
        "id": int, "processingmodule": int, "remote_id": str, "name": str, "itemtype": str,
        "currency": str, "updated": str,
    }, pk="id", foreign_keys=[("processingmodule", "processingmodule", "id")])
    db["pricelist"].create_index(["processingmodule", "remote_id"], unique=True)
    db["pricelist"].create_index(["name"])
    db["pricelist_period"].create({"pricelist": int, "length": int, "cost": str},
                                  pk=("pricelist", "length"))
    db["pricelist_addon"].create({
        "pricelist": int, "intname": str, "remote_id": str, "value": str, "measure": str,
    }, pk=("pricelist", "intname"))

    db["item"].create({
        "id": int, "client": str, "pricelist": int, "itemtype": str, "status": int,
        "processingmodule": int, "period": int, "expiredate": str,
        "upstream_module": int, "upstream_id": str,
        "prev_module": int, "return_on_task": int, "cdate": str, "mdate": str,
    }, pk="id", foreign_keys=[("pricelist", "pricelist", "id"),
                              ("processingmodule", "processingmodule", "id")])
    db["item"].create_index(["status", "id"])
    db["item"].create_index(["client", "id"])
    db["item"].create_index(["upstream_module", "upstream_id"], unique=True)
    for table in ("itemparam", "itemaddon"):
        db[table].create({"item": int, "name": str, "value": str}, pk=("item", "name"))
    db["itemhistory"].create({
        "id": int, "item": int, "date": str, "source": str, "event": int,
        "runningoperation": int, "message": str,
    }, pk="id")
    db["itemhistory"].create_index(["item", "id"])

    db["runningoperation"].create({
        "id": int, "desc": str, "item": int, "itemtype": str, "client": str, "cdate": str,
        "trycount": int, "processingmodule": int, "task": int, "status": str,
        "operation": str, "params": str, "mdate": str,
        "error_type": str, "error_message": str, "amount": str,
    }, pk="id", defaults={"trycount": 0, "status": "new"})
    db["runningoperation"].create_index(["status", "id"])
    db["runningoperation"].create_index(["item", "id"])
    db["runningoperation_error"].create({
        "id": int, "runningoperation": int, "date": str, "type": str, "message": str,
        "amount": str, "deficit": str,
    }, pk="id")
    db["runningoperation_error"].create_index(["runningoperation", "id"])

    db["task"].create({
        "id": int, "type": str, "item": int, "itemstatus": int, "itemtype": str,
        "pricelist": int, "client": str, "runningoperation": int, "opendate": str,
        "closedate": str, "status": str, "note": str, "closedby": str,
    }, pk="id", defaults={"status": "open"})
    db["task"].create_index(["status", "id"])
    db["task"].create_index(["item", "id"])

    db["eventlog"].create({
        "id": int, "processingmodule": int, "event_id": int, "type": str, "date": str,
        "received": str, "item": int, "upstream_item": str, "outcome": str, "reason": str,
        "raw": str,
    }, pk="id")
    db["eventlog"].create_index(["processingmodule", "event_id"], unique=True)
    db["eventlog"].create_index(["outcome", "id"])


@migration
def m002_event_position(db):
    """Where a module's feed was read to, and which events may be acknowledged upstream.

    ``event_skip`` counts the records without a usable id read after ``event_cursor``: they
    cannot move the cursor, yet must not be read (and counted) again. ``ack_mark`` is the
    cursor as it stood at ``ack_mark_date``, acknowledged upstream once old enough so that the
    upstream keeps recent events for a store restored from a backup (``checkevent --from``);
    without a date, it is the last event acknowledged.
    """
    table = db["processingmodule"]
    table.add_column("event_skip", int, not_null_default=0)
    table.add_column("ack_mark", int)
    table.add_column("ack_mark_date", str)


@migration
def m003_remoteid(db):
    """Each service's ``remoteid``, the key the upstream de-duplicates orders by, unique to
    this store: ``<store uid>-<service number>``. Two stores ordering through one upstream
    account (a store rebuilt without its backup, a staging copy) would otherwise share service
    numbers, and one would adopt the other's upstream services. Services ordered before kept
    the bare number they were ordered with."""
    db.execute("ALTER TABLE item ADD COLUMN remoteid TEXT")
    db.execute("UPDATE item SET remoteid = CAST(id AS TEXT)")
    db["item"].create_index(["remoteid"], unique=True)
    db["store_meta"].create({"key": str, "value": str}, pk="key")
    db["store_meta"].insert({"key": "uid", "value": secrets.token_hex(4)})


@migration
def m004_operation_bookkeeping(db):
    """What the engine keeps about sending an operation, in columns of its own rather than
    among the parameters of the request it sends.

    ``reached``: an attempt may have reached the upstream (set before each send, put back when
    the attempt provably did nothing), so the next attempt first reads what the upstream shows.
    ``baseline``: a prolongation's upstream expiry before it was first sent: a later expiry
    tells that it went through. ``eventlog_mark``: the event log's last id when the operation
    was written; events logged after it may be its own.

    An order's request gains what it sends that was read from elsewhere at each try: its
    tariff's upstream id, its period and its datacenter. Earlier stores counted every try
    without a clear refusal as one that may have reached the upstream. A prolongation without
    a baseline never sent anything (the baseline was read before each first send), so it is
    marked as safe to send.
    """
    table = db["runningoperation"]
    table.add_column("reached", int, not_null_default=0)
    table.add_column("baseline", str)
    table.add_column("eventlog_mark", int, not_null_default=0)
    for row in db.execute("SELECT id, operation, params, trycount FROM runningoperation "
                          "WHERE params LIKE '%eventlog_mark%' OR params LIKE "
                          "'%expiredate_before%' OR trycount > 0").fetchall():
        op_id, kind, params, trycount = row
        params = json.loads(params or "{}")
        mark = params.pop("eventlog_mark", 0)
        baseline = params.pop("expiredate_before", None)
        refused = db.execute(
            "SELECT count(*) FROM runningoperation_error WHERE runningoperation = ? AND type IN "
            "('balance', 'auth', 'permanent', 'openfail')", (op_id,)).fetchone()[0]
        reached = trycount > refused and (kind != "prolong" or baseline is not None)
        db.execute("UPDATE runningoperation SET params = ?, eventlog_mark = ?, baseline = ?, "
                   "reached = ? WHERE id = ?",
                   (json.dumps(params, sort_keys=True), mark, baseline, int(reached), op_id))
    # An order's request holds all it sends: its tariff, period and datacenter.
    for row in db.execute(
            "SELECT runningoperation.id, runningoperation.params, item.pricelist, "
            "pricelist.remote_id, item.period, processingmodule.datacenter "
            "FROM runningoperation JOIN item ON item.id = runningoperation.item "
            "JOIN pricelist ON pricelist.id = item.pricelist "
            "JOIN processingmodule ON processingmodule.id = pricelist.processingmodule "
            "WHERE runningoperation.operation = 'open'").fetchall():
        op_id, params, tariff, remote_id, period, datacenter = row
        params = {"pricelist": tariff, "pricelist_remote_id": remote_id, "period": period,
                  "datacenter": datacenter or None, **json.loads(params or "{}")}
        db.execute("UPDATE runningoperation SET params = ? WHERE id = ?",
                   (json.dumps(params, sort_keys=True), op_id))


@migration
def m005_secrets_apart(db):
    """The modules' passwords move out of the books into the secrets file beside the store
    (``<store>.secrets``), so that no copy of the books carries them; the column stays, blank.
    With secure_delete the old values are overwritten, not left in the file's free space."""
    rows = db.execute("SELECT id, password FROM processingmodule WHERE password != ''").fetchall()
    if not rows:
        return
    path = beside(db.execute("PRAGMA database_list").fetchone()[2], SECRETS)
    uid = db.execute("SELECT value FROM store_meta WHERE key = 'uid'").fetchone()[0]
    passwords = read_secrets(path, uid)
    passwords.update((str(module_id), password) for module_id, password in rows)
    write_secrets(path, uid, passwords)
    db.execute("PRAGMA secure_delete = ON")
    db.execute("UPDATE processingmodule SET password = NULL")


@migration
def m006_dialects_and_polling(db):
    """What keeping services in step with a real BILLmanager needs.

    ``processingmodule.api``: the module's dialect (``events``, ``bm6``, ``bm5``), detected once
    when the module is added; the modules of earlier stores all spoke ``events``.
    ``item.compared``: when the upstream's form of the service was last compared with the
    books, so that polling compares every service in turn. ``item.missing``: since when the
    upstream answers that the service's item does not exist (never closed on that alone).
    ``runningoperation.sentdate``: when a send that may have reached the upstream first left,
    so that an order whose answer was lost is looked for among the items made after it.
    """
    db["processingmodule"].add_column("api", str)
    db.execute("UPDATE processingmodule SET api = 'events' WHERE type = 'billmanager'")
    db["item"].add_column("compared", str)
    db["item"].add_column("missing", str)
    db["item"].create_index(["upstream_module", "compared"])
    # Few services are missing: a listing of them reads this, not every service.
    db.execute("CREATE INDEX item_missing ON item (id) WHERE missing IS NOT NULL")
    db["runningoperation"].add_column("sentdate", str)


@migration
def m007_history_who(db):
    """``itemhistory.who``: the user behind a local change of a service (an order, a request,
    a cancelled operation, a closed task, a module switch); empty for what the upstream did."""
    db["itemhistory"].add_column("who", str)


# Every column that holds a time the books wrote; ``eventlog.date`` is the upstream's own date
# of an event, kept as the upstream sent it, and ``expiredate`` is a date.
TIME_COLUMNS = {
    "processingmodule": ("cdate", "balance_date", "ack_mark_date"),
    "pricelist": ("updated",),
    "item": ("cdate", "mdate", "compared", "missing"),
    "itemhistory": ("date",),
    "runningoperation": ("cdate", "mdate", "sentdate"),
    "runningoperation_error": ("date",),
    "task": ("opendate", "closedate"),
    "eventlog": ("received",),
}


@migration
def m008_times_in_utc(db):
    """Times in UTC, as ISO 8601 with a ``Z`` (``2026-12-01T05:00:27Z``): earlier stores wrote
    the local time of whoever ran the command, with no zone, so that a run under another
    ``TZ`` (cron's, a colleague's) shifted the history by hours.

    The stored times are read as local times of the machine's zone at the time of this
    migration (its ``TZ``, else /etc/localtime), the only zone they can have been written in;
    an hour that a clock change made ambiguous is taken as its first occurrence.
    ``eventlog.date`` is the upstream's own date of an event and stays as the upstream sent it.
    """
    def utc(text):
        try:
            local = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        except (TypeError, ValueError):
            return text  # not a time this store wrote: left as it is
        return local.astimezone(datetime.timezone.utc).strftime(STAMP)

    db.conn.create_function("resellctl_utc", 1, utc, deterministic=True)
    for table, columns in TIME_COLUMNS.items():
        for column in columns:
            db.execute(f"UPDATE {table} SET {column} = resellctl_utc({column}) "
                       f"WHERE {column} IS NOT NULL")


@migration
def m009_sync_runs_and_notices(db):
    """What checkevent keeps about itself, for ``resellctl status`` and for telling a problem
    once (resellctl.runlog).

    ``syncrun``: one row per module per run (when it started, how long it took, what it did,
    its outcome and error), the last week or so of runs per module. ``notice``: the problems
    checkevent has seen (a low balance, an upstream error, an operation stuck), each since when
    and when last told under ``-q``, so that cron mails a problem when it appears and then at
    most once a day.
    """
    db["syncrun"].create({
        "id": int, "processingmodule": int, "started": str, "seconds": float, "outcome": str,
        "applied": int, "skipped": int, "unknown": int, "rejected": int, "completed": int,
        "rerun": int, "retried": int, "more": int, "error": str, "error_kind": str,
    }, pk="id")
    db["syncrun"].create_index(["processingmodule", "id"])
    db["notice"].create({"processingmodule": int, "key": str, "first_seen": str, "told": str},
                        pk=("processingmodule", "key"))


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

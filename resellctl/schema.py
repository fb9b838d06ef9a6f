"""The books' schema: an ordered list of migrations, each bringing the store one version on.

A store's ``PRAGMA user_version`` is the number of migrations applied to it; resellctl.store
runs the rest when it opens an older store, in one transaction. A migration never changes once
released: a new column or table is a new migration at the end of the list. Each gets a
``sqlite_utils.Database`` over the store's connection.
"""

import datetime
import json
import secrets

from resellctl.storefiles import SECRETS, beside, read_secrets, write_secrets

STAMP = "%Y-%m-%dT%H:%M:%SZ"  # how the store writes a time: UTC, ISO 8601
PROBLEMS = ("unknown", "rejected")  # the outcomes of events that could not be applied

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


@migration
def m010_problem_events_indexed_alone(db):
    """The event log's problems (unknown and rejected events) indexed apart: an index of every
    event by its outcome cost each applied event of a backlog one more write, for listings that
    only ever ask for the problems. Each partial index holds the events of one outcome; a query
    names the outcome as it is written here, so that SQLite uses it."""
    db.execute("DROP INDEX IF EXISTS idx_eventlog_outcome_id")
    for outcome in PROBLEMS:
        db.execute(f"CREATE INDEX eventlog_{outcome} ON eventlog (id) "
                   f"WHERE outcome = '{outcome}'")


SCHEMA_VERSION = len(MIGRATIONS)

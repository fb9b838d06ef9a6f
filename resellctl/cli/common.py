"""What the command modules share: the App from the context, K=V parsing, outcome reports."""

import decimal
import os
import shlex
import stat

import click

from resellctl import errors, output
from resellctl.errors import InputError
from resellctl.output import say
from resellctl.states import ItemStatus, item_label
from resellctl.store import MAX_ID
from resellctl.views import DEFAULT_LIMIT


def app_of(ctx=None):
    """The App of the running command."""
    return (ctx or click.get_current_context()).find_root().obj


def say_created(app):
    """Say where the store is if this command has just created it; whether it has."""
    if app.store.created:
        say(f"created the store at {app.store.path} ({app.store_source})")
    return app.store.created


def who():
    """The login name of the person running the command, for the history."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "staff"


def engine_of(app):
    """The operation engine over the App's store, with the App's upstream clients."""
    from resellctl.operations import Engine

    return Engine(app.store, app.upstreams)


ITEM = click.IntRange(1, MAX_ID)  # a service number


class ItemStatusType(click.ParamType):
    """A service status by its name (``active``) or its code (``2``): an ItemStatus."""

    name = "status"
    NAMES = ", ".join(f"{status.label} ({status.value})" for status in ItemStatus)

    def convert(self, value, param, ctx):
        if isinstance(value, ItemStatus):
            return value
        text = str(value).strip().lower()
        for status in ItemStatus:
            if text in (status.label, str(status.value)):
                return status
        self.fail(f"{value!r} is not a service status: {self.NAMES}", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(status.label, help=str(status.value)) for status in ItemStatus
                if status.label.startswith(incomplete)]


ITEM_STATUS = ItemStatusType()
# How a terminal shows the service statuses of a listing: `active`, not 2.
ITEM_LABELS = {"status": item_label}


def page_options(fn):
    """--after, --limit and --last: the keyset page of a listing."""
    fn = click.option("--last", type=click.IntRange(1, MAX_ID), metavar="N",
                      help="The newest N rows (still oldest first), in place of --limit.")(fn)
    fn = click.option("--after", type=click.IntRange(0, MAX_ID), metavar="ID",
                      help="Start after this id (the next page).")(fn)
    fn = click.option("--limit", type=click.IntRange(0, MAX_ID), default=DEFAULT_LIMIT,
                      show_default=True, help="At most this many rows (0: all).")(fn)
    return fn


def emit_page(app, page, columns, as_json=False, quiet=False, labels=None):
    """Print a listing's Page as output.emit_rows does; when the page held back rows, say so
    on stderr with the command that shows the next page."""
    ctx = click.get_current_context()
    if ctx.params.get("last") and (
            ctx.get_parameter_source("limit") != click.core.ParameterSource.DEFAULT):
        raise InputError("give --limit or --last, not both")
    output.emit_rows(app, page, columns, as_json=as_json, quiet=quiet, labels=labels)
    if page.more:
        say(f"more rows: {_again(ctx, after=page.last)}")


def _again(ctx, **changed):
    """The command line of the running command, with the option values ``changed``: what the
    user gave on it (by its long name), and nothing that came by default."""
    words = ["resellctl"]
    root = ctx.find_root()
    if root.params.get("db_path") and (
            root.get_parameter_source("db_path") == click.core.ParameterSource.COMMANDLINE):
        words += ["--db", root.params["db_path"]]
    words += ctx.command_path.split()[1:]
    for param in ctx.command.params:
        name = param.name
        given = ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        if name in changed or not given or not isinstance(param, click.Option):
            continue
        flag = max(param.opts, key=len)
        value = ctx.params[name]
        # A status as it reads: active, not 2.
        words += [flag] if param.is_flag else [flag, str(getattr(value, "label", value))]
    for name, value in changed.items():
        words += [f"--{name}", str(value)]
    return " ".join(map(shlex.quote, words))


OUTCOME_COLUMNS = ["item", "runningoperation", "status", "task"]


def outcome_rows(outcomes):
    """The rows `order`, `ops start` and the lifecycle commands print, one per operation."""
    for o in outcomes:
        yield {"item": o.item, "runningoperation": o.runningoperation, "status": o.status,
               "task": o.task, "error": o.error.message if o.error else None}


def pairs(values, what):
    """``("ip=192.0.2.1", ...)`` as a dict; InputError for an item without ``=``."""
    result = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise InputError(f"{what} must look like NAME=VALUE, not {value!r}")
        result[name] = rest
    return result


def read_password_file(path):
    """The first line of a password file (without its line end); InputError if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
            mode = os.fstat(f.fileno()).st_mode
    except OSError as e:
        raise InputError(f"cannot read the password file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"the password file {path} is not UTF-8 text") from None
    if not password:
        raise InputError(f"the password file {path} is empty")
    if mode & stat.S_IROTH:
        say(f"warning: every user may read the password file {path} (mode "
            f"{stat.S_IMODE(mode):04o})\n  fix it with: chmod 600 {shlex.quote(path)}")
    return password


def _total_deficit(shortfalls):
    """Several operations refused for want of funds: say what they need together."""
    if len(shortfalls) < 2:
        return
    try:
        need = sum(decimal.Decimal(e.params["amount"]) for e in shortfalls)
        have = decimal.Decimal(shortfalls[-1].params["have"])
        short = need - have
    except (KeyError, decimal.DecimalException):  # "sNaN", "1e999999999" twice, ...
        return
    if not short.is_finite() or short <= 0:
        return  # the upstream's amounts make no sense together: nothing useful to say
    currency = shortfalls[-1].params.get("currency", "")
    say(f"together these {len(shortfalls)} operations need {need} {currency}, the selling "
        f"account has {have}: top up by at least {short} {currency} to run them all"
        .replace("  ", " "))


def report_failures(outcomes):
    """Say what failed and what to do next; raise the error whose exit status fits them all.

    An operation another process is sending right now ("busy") is temporary: exit 75 when
    nothing worse happened.
    """
    failed = [o for o in outcomes if o.status == "failed" and not o.unsent]
    unsent = [o for o in outcomes if o.unsent]
    busy = [o for o in outcomes if o.status == "busy"]
    for outcome in failed:
        say(f"operation {outcome.runningoperation} (service {outcome.item}) failed: "
            f"{outcome.error.message}")
        if outcome.hint:
            say(f"  {outcome.hint}")
    _total_deficit([o.error for o in failed if o.error.kind == errors.BALANCE])
    for outcome in busy:
        say(f"operation {outcome.runningoperation} (service {outcome.item}) is being sent by "
            f"another resellctl process right now; see `resellctl ops show "
            f"{outcome.runningoperation}` in a moment")
    if unsent:
        first, last = unsent[0].runningoperation, unsent[-1].runningoperation
        which = f"{first}{f' to {last}' if last != first else ''}"
        how = ("resellctl ops list --status new -q | resellctl ops start -"
               if all(o.status == "new" for o in unsent)
               else "resellctl ops start " + " ".join(str(o.runningoperation) for o in unsent))
        say(f"operation(s) {which} not sent, as the upstream did not answer; once it does: "
            f"{how}")
    if not failed and not unsent and not busy:
        return
    transient = all(o.error.kind == errors.TRANSIENT for o in failed)
    (count, word), *more = [(len(group), word) for group, word in (
        (failed, "failed"), (unsent, "not sent"), (busy, "busy")) if group]
    raise errors.UpstreamError(errors.TRANSIENT if transient else errors.PERMANENT,
                               f"{count} of {len(outcomes)} operation(s) {word}"
                               + "".join(f", {n} {w}" for n, w in more))

"""What the command modules share: the App from the context, K=V parsing, outcome reports."""

import decimal
import os
import shlex
import stat
import sys

import click

from resellctl import errors, output
from resellctl.errors import InputError, ResellError
from resellctl.output import say
from resellctl.states import ItemStatus, item_label
from resellctl.store import MAX_ID, as_id
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
    """The real user behind the command, for the books: the one who ran sudo when running under
    it (the real uid 0 and SUDO_USER an account), else the account of the real uid.

    Never $LOGNAME or $USER (what getpass.getuser() reads): anyone can set them to any name.
    Only root can set SUDO_USER, and root can write the books by hand anyway.
    """
    import pwd

    uid = os.getuid()
    sudo_user = os.environ.get("SUDO_USER") if uid == 0 else None
    if sudo_user:
        try:
            return pwd.getpwnam(sudo_user).pw_name
        except KeyError:
            pass  # not an account: the real uid says who it is
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without an account (a container's): its number
        return f"uid {uid}"


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


def read_ids(values, what):
    """The ids given as arguments, or read from stdin for a lone ``-`` (one per line or
    separated by blanks), each once and in order; [] when stdin holds none.
    ``what`` names them in errors: "operation", "service"."""
    if list(values) == ["-"]:
        values = sys.stdin.read().split()
    elif "-" in values:
        raise InputError(f"give {what} ids or a lone '-' (ids from stdin), not both")
    ids = [as_id(value, what) for value in values]
    return list(dict.fromkeys(ids))  # the same id twice must not be acted on twice


def yes_option(fn):
    """--yes, which a destructive command needs when there is no terminal to ask on (see
    confirm)."""
    return click.option("-y", "--yes", is_flag=True,
                        help="Do it without asking (needed when stdin is not a terminal).")(fn)


def confirm(app, yes, command, lines, question):
    """Ask before a destructive change, unless ``yes`` (given --yes): show ``lines``, exactly
    what ``command`` ("services close") will do, one line per thing it changes, and ask
    ``question`` [y/N]. Without a terminal to ask on, InputError naming --yes.

    Raises ResellError (exit 1) when the answer is not yes: nothing was done.
    """
    if yes:
        return
    # The terminal that counts is stdin's, where the answer is read from: a pipe there (ids for
    # `-`, or `yes |`) must never answer for a person. stderr, where the question is shown, is
    # a terminal in `echo 3 | resellctl services close -` too.
    if not app.stdin_isatty:
        raise InputError(f"{command} asks before it acts, and stdin is not a terminal to ask "
                         "on: give --yes to go ahead without asking")
    say("\n".join([f"resellctl {command}:", *(f"  {line}" for line in lines)]))
    try:
        answer = click.confirm(question, default=False, err=True)
    except click.Abort as abort:
        # click turns both Ctrl-C and end of input into Abort ("Aborted!", exit 1); what it
        # caught is still its context. Ctrl-C is an interruption (130), as anywhere else, and
        # end of input (Ctrl-D) an answer that is not yes; either leaves the question's line
        # unended.
        click.echo(err=True)
        if isinstance(abort.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        answer = False
    if not answer:
        raise ResellError("not confirmed: nothing was done")


def counted(count, noun):
    """``2 services``, ``1 service``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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

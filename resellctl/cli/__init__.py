"""The ``resellctl`` command line: parsing only; the work is done by the engine modules.

Subcommands are imported only when invoked, so ``resellctl --version`` and ``--help`` cost
little more than importing click.
"""

import importlib
import sys

import click

from resellctl import __version__
from resellctl.errors import InputError, Interrupted, ResellError, StoreError

# name -> "module:attribute"; the order is the order of `resellctl --help`.
COMMANDS = {
    "init": "resellctl.cli.store:init",
    "backup": "resellctl.cli.store:backup",
    "demo": "resellctl.cli.demo:demo",
    "modules": "resellctl.cli.modules:modules",
    "tariffs": "resellctl.cli.tariffs:tariffs",
    "order": "resellctl.cli.order:order",
    "services": "resellctl.cli.services:services",
    "set-module": "resellctl.cli.services:set_module",
    "ops": "resellctl.cli.ops:ops",
    "tasks": "resellctl.cli.tasks:tasks",
    "checkevent": "resellctl.cli.checkevent:checkevent",
    "events": "resellctl.cli.checkevent:events",
    "status": "resellctl.cli.status:status",
    "sim": "resellctl.cli.sim:sim",
}

# One-line help for `resellctl --help`, so listing commands does not import them all.
SHORT_HELP = {
    "init": "Create the store and say where it is.",
    "backup": "Copy the store consistently, even while cron writes to it.",
    "demo": "A guided run against the embedded simulator in a temporary store.",
    "modules": "Processing modules: upstream selling BILLmanagers and manual ones.",
    "tariffs": "Tariffs (pricelists) imported from the upstream.",
    "order": "Order services of a tariff.",
    "services": "Services: list, show and change them.",
    "set-module": "Switch a service's processing module.",
    "ops": "Running operations: list, show, start.",
    "tasks": "Tasks: the follow-up of operations.",
    "checkevent": "Keep every service in step with its upstream (what cron runs).",
    "events": "The event log kept by checkevent.",
    "status": "Whether all is well, for people and monitoring (exit 0, 1 or 2).",
    "sim": "The embedded selling BILLmanager, for tests and demos.",
}


class CommandFailed(click.ClickException):
    """A ResellError as click shows it: one line (and a hint) on stderr, its own exit code."""

    def __init__(self, error):
        super().__init__(error.message)
        self.exit_code = int(error.exit_status)
        self.hint = error.hint

    def format_message(self):
        from resellctl.output import clean

        # The message is one line whatever upstream text (a tariff name, an error message) it
        # holds: a line break in it is shown as \n. A hint may have lines of its own.
        hint = self.hint.split("\n") if self.hint else []
        return "\n".join([clean(self.message), *map(clean, hint)])


class ResellGroup(click.Group):
    """A group that turns ResellError into CommandFailed wherever it is raised below it, and
    Ctrl-C into one line and exit status 130 (click would say "Aborted!" and exit 1)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ResellError as error:
            raise CommandFailed(error) from None
        except KeyboardInterrupt:
            raise CommandFailed(Interrupted()) from None

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", ResellGroup)
        return super().group(*args, **kwargs)


class LazyGroup(ResellGroup):
    """The root group: loads a subcommand's module only when that subcommand runs."""

    def parse_args(self, ctx, args):
        # Bytes that are not UTF-8 (a latin-1 terminal's "Müller") reach sys.argv as lone
        # surrogates, which neither the store nor the upstream can take: refused here, once.
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                # Each such byte is a surrogate U+DC80 to U+DCFF: shown as the byte it was.
                shown = "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff"
                                else ch for ch in arg)
                raise CommandFailed(InputError(
                    f"argument '{shown}' is not UTF-8 text",
                    "Set the terminal (LANG, LC_ALL) or the script to UTF-8.")) from None
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        """As click's; a mistyped command gets a suggestion, as a mistyped subcommand does
        (click draws its suggestions from the commands it holds, and this group holds none)."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            import difflib

            close = difflib.get_close_matches(click.utils.make_str(args[0]), COMMANDS, n=1)
            if not close or "Did you mean" in error.format_message():
                raise
            raise click.UsageError(f"{error.message} Did you mean {close[0]!r}?", ctx) from None

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx, formatter):
        rows = [(name, SHORT_HELP[name]) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class App:
    """What every command shares: where the store is, and whether stdin and the output are
    terminals.

    Tests pass their own ``App(stdout_isatty=True)`` as ``obj`` to see the terminal output, or
    ``App(stdin_isatty=True)`` to be asked as a person at a terminal is.
    """

    def __init__(self, db_path=None, stdout_isatty=None, stderr_isatty=None,
                 stdin_isatty=None):
        self.db_path = db_path  # the --db flag's value, if given
        self._stdout_isatty = stdout_isatty
        self._stderr_isatty = stderr_isatty
        self._stdin_isatty = stdin_isatty
        self._store = None
        self.store_source = None  # what named the store: "from the --db flag", ...
        self.verbose = False  # -v: each upstream call on stderr
        self._upstreams = None

    @property
    def upstreams(self):
        """The clients of the store's billmanager modules (requests is imported only here).
        With -v each call is said on stderr; on a terminal, each retry too."""
        if self._upstreams is None:
            from resellctl.upstream import Upstreams

            self._upstreams = Upstreams(
                self.store.password, _say_call if self.verbose else None,
                _say_retry if self.stderr_isatty or self.verbose else None)
        return self._upstreams

    @property
    def stdout_isatty(self):
        if self._stdout_isatty is None:
            return sys.stdout.isatty()
        return self._stdout_isatty

    @property
    def stderr_isatty(self):
        if self._stderr_isatty is None:
            return sys.stderr.isatty()
        return self._stderr_isatty

    @property
    def stdin_isatty(self):
        if self._stdin_isatty is None:
            return sys.stdin.isatty()
        return self._stdin_isatty

    @property
    def store(self):
        """The store, opened (and migrated if need be) on first use; an error naming the path
        and what named it if there is none there."""
        return self.open_store()

    def open_store(self, create=False, migrate=True):
        """The store, opened on first use; with ``create``, made if there is none (only `init`
        and `modules add` do: a mistyped path must not become a new empty store)."""
        if self._store is None:
            from resellctl.config import store_path
            from resellctl.store import NoStore, Store

            path, source = store_path(self.db_path)
            try:
                store = Store.open(path, create=create, migrate=migrate)
            except NoStore as e:
                raise StoreError(f"{e.message} ({source})",
                                 "Create it with `resellctl init`, or point --db, RESELLCTL_DB "
                                 "or the configuration file's db at the store.") from None
            self._store, self.store_source = store, source
            _warn_exposed(store)
        return self._store

    def close(self):
        if self._upstreams is not None:
            self._upstreams.close()
            self._upstreams = None
        if self._store is not None:
            self._store.close()
            self._store = None


def _say_call(func, seconds, outcome):
    from resellctl.output import say

    say(f"upstream: {func} {seconds:.3f} s {outcome}")


def _say_retry(message):
    from resellctl.output import say

    say(f"upstream: {message}")


def _not_empty(ctx, param, value):
    if value == "":
        # Not the default store in its place: that would be another store than the one meant.
        raise click.BadParameter("must name the store, not be empty", ctx, param)
    return value


def _warn_exposed(store):
    """Warn (once: the App opens the store once) when other users may read the books."""
    exposed = store.exposed()
    if exposed:
        import shlex

        from resellctl.output import say

        say("warning: other users may read the store: "
            + ", ".join(f"{path} (mode {mode:04o})" for path, mode in exposed)
            + "\n  fix it with: chmod 600 " + " ".join(shlex.quote(p) for p, _ in exposed))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", metavar="PATH", callback=_not_empty,
              help="The store (else RESELLCTL_DB, else db in /etc/resellctl.conf, else "
                   "~/.local/share/resellctl/resellctl.db).")
@click.option("-v", "--verbose", is_flag=True,
              help="Say each upstream call on stderr: its function, how long it took, what "
                   "came of it (never a password or a session id).")
@click.version_option(__version__, "--version", prog_name="resellctl")
@click.pass_context
def cli(ctx, db_path, verbose):
    """Resell the services of an upstream selling BILLmanager.

    Orders and changes become running operations sent upstream; `resellctl checkevent`, run by
    cron every five minutes, keeps every service in step with its upstream.
    """
    if ctx.obj is None:
        ctx.obj = App()
    if db_path is not None:
        ctx.obj.db_path = db_path
    ctx.obj.verbose = ctx.obj.verbose or verbose
    ctx.call_on_close(ctx.obj.close)


def main():
    """The console script. A reader that leaves early (`resellctl ops list | head`) is click's
    to handle: it silences the closed pipe, with no traceback."""
    cli(prog_name="resellctl")

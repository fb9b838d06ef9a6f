"""`resellctl modules`: processing modules."""

import sys

import click

from resellctl import modules as modules_
from resellctl import output, views
from resellctl.cli import ResellGroup
from resellctl.cli.common import (app_of, confirm, read_password_file, say_created, who,
                                  yes_option)
from resellctl.errors import InputError


@click.group(cls=ResellGroup)
def modules():
    """Processing modules: upstream selling BILLmanagers and manual ones."""


def _read_password(password_file, password_stdin):
    if password_file and password_stdin:
        raise InputError("give --password-file or --password-stdin, not both")
    if password_file:
        return read_password_file(password_file)
    if not password_stdin:
        return None
    try:
        if sys.stdin.isatty():
            # Typed by hand: prompt, and keep it off the screen.
            import getpass

            password = getpass.getpass("Password: ", stream=sys.stderr)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        password.encode("utf-8")  # bytes that are not UTF-8 may come in as surrogates
    except UnicodeError:
        raise InputError("the password read from stdin is not UTF-8 text") from None
    if not password:
        raise InputError("the password read from stdin is empty")
    return password


def _settings(fn):
    """The options that set what a billmanager module holds (add, edit)."""
    for decorator in reversed([
        click.option("--url", help="The upstream's API endpoint, e.g. "
                                   "https://billing.example.com/billmgr"),
        click.option("--username", help="The reseller's account at the upstream."),
        click.option("--password-file", type=click.Path(dir_okay=False),
                     help="A file whose first line is the password (never pass it as an "
                          "argument)."),
        click.option("--password-stdin", is_flag=True,
                     help="Read the password from standard input."),
        click.option("--api", type=click.Choice(modules_.APIS),
                     help="The dialect the upstream speaks: events (a feed of its own), bm6, "
                          "bm5 (a real BILLmanager 6 or 5); auto asks the upstream once "
                          "(default when adding)."),
        click.option("--datacenter", help="The upstream datacenter id to order in."),
        click.option("--min-balance", metavar="AMOUNT",
                     help="Warn when the upstream balance falls below this."),
        click.option("--auto-rerun/--no-auto-rerun", default=None,
                     help="Whether checkevent re-runs operations that failed for want of funds "
                          "once the balance covers them, or on a temporary error, or were never "
                          "sent (default: on)."),
    ]):
        fn = decorator(fn)
    return fn


def _describe(module, added=None):
    what = module["type"] if module["type"] == "manual" else f"billmanager, dialect {module['api']}"
    verb = "" if added is None else (" added" if added else " updated")
    return f"module {module['name']} ({what}){verb}"


@modules.command("add")
@click.argument("name")
@click.option("--type", "type_", type=click.Choice(modules_.MODULE_TYPES),
              help="billmanager: an upstream selling BILLmanager; manual: tasks for staff.")
@_settings
@click.option("--replace", is_flag=True,
              help="Change an existing module instead (as `modules edit` does): options not "
                   "given are kept.")
def add(name, type_, url, username, password_file, password_stdin, api, datacenter,
        min_balance, auto_rerun, replace):
    """Add a processing module. A billmanager module's dialect is asked of its upstream once
    (--api auto), which also proves the URL and the password.

    \b
    resellctl modules add vds-up --type billmanager \\
        --url https://billing.example.com/billmgr --username reseller@example.net \\
        --password-file /root/.vds-up.pw --min-balance 20
    resellctl modules add manual --type manual
    """
    password = _read_password(password_file, password_stdin)
    app = app_of()
    # The first step of a new setup (the README's tour) may make the store.
    app.open_store(create=True)
    say_created(app)
    added, module = modules_.add_module(
        app.store, name, type_, password=password, replace=replace, trace=app.upstreams.trace,
        url=url, username=username, api=api, datacenter=datacenter, min_balance=min_balance,
        auto_rerun=auto_rerun)
    output.say(_describe(module, added))


@modules.command("edit")
@click.argument("name")
@_settings
def edit(name, url, username, password_file, password_stdin, api, datacenter, min_balance,
         auto_rerun):
    """Change some settings of module NAME, keeping the rest.

    \b
    resellctl modules edit vds-up --url https://my.provider.example/billmgr
    resellctl modules edit vds-up --password-file /root/.vds-up.pw
    resellctl modules edit vds-up --api auto      # ask the upstream again
    """
    password = _read_password(password_file, password_stdin)
    app = app_of()
    module = modules_.edit_module(app.store, name, password=password,
                                  trace=app.upstreams.trace, url=url, username=username,
                                  api=api, datacenter=datacenter, min_balance=min_balance,
                                  auto_rerun=auto_rerun)
    output.say(_describe(module, added=False))


@modules.command("remove")
@click.argument("name")
@yes_option
def remove(name, yes):
    """Remove module NAME: refused while a service that is not closed uses it, or one of its
    operations is not finished.

    \b
    resellctl modules remove old-up
    """
    app = app_of()
    module = app.store.module(name)
    modules_.removable(app.store, module)  # refused before anything is asked
    tariffs = app.store.one("SELECT count(*) FROM pricelist WHERE processingmodule = ?",
                            (module["id"],))[0]
    confirm(app, yes, "modules remove",
            [f"module {module['name']} ({module['type']}, {module['url'] or 'no upstream'})"
             f", its {tariffs} tariff(s) and its password"], "Remove it?")
    closed = modules_.remove_module(app.store, module["name"], who=who())
    output.say(f"module {module['name']} removed"
               + (f"; {closed} closed service(s) keep their history" if closed else ""))


@modules.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def check(name, as_json):
    """Log in to module NAME's upstream, read its balance, tell its dialect, and count the
    services it holds per item type against the books. Exit 0 well, 1 refused (credentials,
    access), 75 unreachable.

    \b
    resellctl modules check vds-up
    """
    app = app_of()
    report = modules_.check(app.store, app.upstreams, name)
    if as_json:
        click.echo(output.to_json(report, indent=2))
    else:
        balance = (f"{report['balance']} {report['currency']}" if report["balance"] is not None
                   else "unknown")
        output.say(f"{report['module']}: logged in to {report['url']} as {report['username']}; "
                   f"dialect {report['api']}; balance {balance}", err=False)
        for row in report["services"]:
            output.say(f"  {row['itemtype']}: {row['upstream']} upstream, {row['known']} in the "
                       "books", err=False)
    for warning in report["warnings"]:
        output.say(f"warning: module {report['module']}: {warning}")


@modules.command("list")
@output.options
def list_(as_json, quiet):
    """List processing modules (passwords are never shown).

    \b
    resellctl modules list --json
    """
    app = app_of()
    output.emit_rows(app, views.modules(app.store),
                     ["id", "name", "type", "api", "url", "username", "min_balance", "balance",
                      "currency", "balance_date"], as_json=as_json, quiet=quiet)

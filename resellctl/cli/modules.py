"""`resellctl modules`: processing modules."""

import sys

import click

from resellctl import catalog, output, views
from resellctl.cli import ResellGroup
from resellctl.cli.common import app_of, read_password_file, say_created
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


@modules.command("add")
@click.argument("name")
@click.option("--type", "type_", type=click.Choice(catalog.MODULE_TYPES), required=True,
              help="billmanager: an upstream selling BILLmanager; manual: tasks for staff.")
@click.option("--url", help="The upstream's API endpoint, e.g. https://billing.example.com/billmgr")
@click.option("--username", help="The reseller's account at the upstream.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="A file whose first line is the password (never pass it as an argument).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--datacenter", help="The upstream datacenter id to order in.")
@click.option("--min-balance", metavar="AMOUNT",
              help="Warn when the upstream balance falls below this.")
@click.option("--auto-rerun/--no-auto-rerun", default=None,
              help="Whether checkevent re-runs operations that failed for want of funds once "
                   "the balance covers them (default: on).")
@click.option("--replace", is_flag=True,
              help="Update the settings of an existing module; options not given are kept.")
def add(name, type_, url, username, password_file, password_stdin, datacenter, min_balance,
        auto_rerun, replace):
    """Add a processing module.

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
    added = catalog.add_module(app.store, name, type_, url=url, username=username,
                               password=password, datacenter=datacenter,
                               min_balance=min_balance, auto_rerun=auto_rerun,
                               replace=replace)
    output.say(f"module {name} ({type_}) {'added' if added else 'updated'}")


@modules.command("list")
@output.options
def list_(as_json, quiet):
    """List processing modules (passwords are never shown).

    \b
    resellctl modules list
    resellctl modules list --json
    """
    app = app_of()
    output.emit_rows(app, views.modules(app.store),
                     ["id", "name", "type", "url", "username", "min_balance", "balance",
                      "currency", "balance_date", "event_cursor"],
                     as_json=as_json, quiet=quiet)

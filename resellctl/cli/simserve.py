"""``resellctl sim serve``: run the embedded selling BILLmanager until interrupted."""

import ipaddress
import math
import os
import secrets
import signal
import sys
import tempfile
import threading

import click

from resellctl.cli.common import read_password_file
from resellctl.errors import InputError, ResellError

# As resellctl.sim.dialects has them; not imported from there, so that parsing a command line
# does not load the simulator.
DIALECTS = ("events", "bm6", "bm5")
QUIRKS = ("single-row-object", "item-real-status", "daily-charges", "no-paging", "comma-balance",
          "edit-no-remoteid", "edit-missing")


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _new_password_file():
    """A random password, in a new mode-0600 file of a private temporary directory."""
    password = secrets.token_urlsafe(18)
    path = os.path.join(tempfile.mkdtemp(prefix="resellctl-sim-"), "password")
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(password + "\n")
    return password, path


def amount(value):
    from resellctl.sim.state import money

    try:
        return money(value)
    except ValueError as error:
        raise InputError(str(error)) from None


def finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless --public).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--username", default="reseller@example.net", show_default=True,
              help="The selling account's username.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="Read the account's password from the first line of this file "
                   "(default: generate one and write it to a new private file).")
@click.option("--balance", default="100.00", show_default=True,
              help="The account's starting balance.")
@click.option("--open-delay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds before an ordered service may open (at the next event poll, or "
                   "in bm6/bm5 the next list or .edit read).")
@click.option("--api", "api", type=click.Choice(DIALECTS), default="events", show_default=True,
              help="The dialect: the protocol's own event feed, or a real BILLmanager 6 or 5 "
                   "(docs/protocol.md).")
@click.option("--quirk", "quirks", type=click.Choice(QUIRKS), multiple=True,
              help="Behave as some real upstreams do (bm6/bm5 only; repeatable).")
@click.option("--session-idle", type=click.FloatRange(min=0, min_open=True), callback=finite,
              default=3600.0, show_default=True,
              help="Seconds without requests after which a bm6/bm5 login session ends.")
@click.option("--public", is_flag=True,
              help="Allow a non-loopback --host: the admin endpoint has no credentials.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request on stderr.")
def serve(host, port, username, password_file, balance, open_delay, api, quirks, session_idle,
          public, verbose):
    """Run a selling BILLmanager until interrupted.

    Prints the API URL as the one line on stdout, for scripts to read.

    \b
    resellctl sim serve --port 8765 --balance 3 --password-file pw
    resellctl sim serve --api bm6 --quirk no-paging
    """
    if not public and not _is_loopback(host):
        raise InputError(f"refusing to listen on {host}, which is not a loopback address "
                         "(--public allows it)")
    balance = amount(balance)
    if password_file:
        password, generated = read_password_file(password_file), None
    else:
        password, generated = _new_password_file()
    try:
        server = _listen(host, port, verbose, username=username, password=password,
                         balance=balance, open_delay=open_delay, api=api, quirks=quirks,
                         session_idle=session_idle)
        with server:
            # Before the URL is out: a script may signal as soon as it has used the server.
            stop = _stop_on_signal()
            click.echo(server.url)
            sys.stdout.flush()
            where = f"in {generated}" if generated else f"from {password_file}"
            click.echo(f"Selling BILLmanager simulator ({api}) at {server.url}: account "
                       f"{username}, password {where}, balance {balance} "
                       f"{server.sim.currency}. Ctrl-C stops it.", err=True)
            while not stop.wait(0.5):
                pass
    finally:
        if generated:  # the password dies with the server
            os.unlink(generated)
            os.rmdir(os.path.dirname(generated))


def _listen(host, port, verbose, **settings):
    """A running server for a Simulator(**settings)."""
    from resellctl.sim import Simulator, serve

    try:
        return serve(Simulator(**settings), host, port, verbose=verbose)
    except ValueError as error:
        raise InputError(str(error)) from None
    except OSError as error:
        raise ResellError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _stop_on_signal():
    """An Event that SIGINT and SIGTERM set, from now on."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop

"""``resellctl sim``: run the embedded selling BILLmanager, and act on a running one."""

import json
import urllib.error
import urllib.request

import click

from resellctl.cli import ResellGroup
from resellctl.cli.common import pairs
from resellctl.cli.simserve import amount as _amount, finite as _finite, serve
from resellctl.errors import TRANSIENT, InputError, UpstreamError

FAULT_KINDS = ("500", "html", "garbage", "nodoc", "delay", "drop", "drop_after_commit")
ADMIN_TIMEOUT = 30  # seconds; seeding a large backlog takes a few


@click.group(cls=ResellGroup)
def sim():
    """The embedded selling BILLmanager, for tests and demos.

    `sim serve` runs one; the other commands act on a running one through its admin endpoint
    (--url, or env RESELLCTL_SIM_URL: the API URL `sim serve` printed, or the server's root).
    """


sim.add_command(serve)


# --- commands on a running simulator ---------------------------------------------------------

def _admin_base(url):
    base = url.rstrip("/")
    for suffix in ("/billmgr", "/sim"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    return base


def _call(url, action, body=None):
    """POST one admin action to the simulator at ``url``; its JSON answer."""
    request = urllib.request.Request(
        f"{_admin_base(url)}/sim/{action}", data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error)["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {error.code}"
        raise InputError(f"the simulator refused {action}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UpstreamError(TRANSIENT,
                            f"the simulator at {url} is unreachable: {reason}") from None
    except (ValueError, RecursionError):
        raise UpstreamError(TRANSIENT, f"the simulator at {url} gave an answer that is "
                                       "not JSON") from None


def _url_option(command):
    return click.option("--url", envvar="RESELLCTL_SIM_URL", required=True, metavar="URL",
                        help="The simulator (env RESELLCTL_SIM_URL).")(command)


@sim.command()
@click.argument("amount")
@click.option("--username", help="The account (default: the first one).")
@_url_option
def topup(amount, username, url):
    """Add AMOUNT to an account's balance; prints the new balance.

    \b
    resellctl sim topup 50
    """
    _change_balance(url, "topup", amount, username)


@sim.command("set-balance")
@click.argument("amount")
@click.option("--username", help="The account (default: the first one).")
@_url_option
def set_balance(amount, username, url):
    """Set an account's balance to AMOUNT; prints it.

    \b
    resellctl sim set-balance 1234.50
    """
    _change_balance(url, "set-balance", amount, username)


def _change_balance(url, action, amount, username):
    answer = _call(url, action, {"amount": str(_amount(amount)), "username": username})
    click.echo(answer["balance"])


@sim.command()
@click.option("--username", help="The account (default: the first one).")
@_url_option
def balance(username, url):
    """Print an account's balance.

    \b
    resellctl sim balance --url http://127.0.0.1:8765/billmgr
    """
    click.echo(_call(url, "balance", {"username": username})["balance"])


@sim.command()
@click.argument("item")
@click.option("--msg", help="The reason the suspend event carries.")
@_url_option
def suspend(item, msg, url):
    """Suspend upstream item ITEM, as an abuse desk would.

    \b
    resellctl sim suspend 4201 --msg abuse
    """
    _call(url, "suspend", {"item": item, "msg": msg})


@sim.command()
@click.argument("item")
@_url_option
def resume(item, url):
    """Resume upstream item ITEM.

    \b
    resellctl sim resume 4201
    """
    _call(url, "resume", {"item": item})


@sim.command()
@click.argument("item")
@_url_option
def delete(item, url):
    """Delete upstream item ITEM (a close event).

    \b
    resellctl sim delete 4201
    """
    _call(url, "delete", {"item": item})


@sim.command()
@click.argument("item")
@click.argument("params", nargs=-1, required=True, metavar="K=V...")
@_url_option
def setparam(item, params, url):
    """Change parameters of upstream item ITEM (a setparam event).

    \b
    resellctl sim setparam 4201 ip=192.0.2.99
    """
    _call(url, "setparam", {"item": item, "params": pairs(params, "a parameter")})


@sim.command()
@click.argument("item")
@click.argument("date", metavar="YYYY-MM-DD")
@_url_option
def expiredate(item, date, url):
    """Set the expiry date of upstream item ITEM (a prolong event).

    \b
    resellctl sim expiredate 4201 2030-01-31
    """
    _call(url, "expiredate", {"item": item, "date": date})


@sim.command("change-tariff")
@click.argument("item")
@click.argument("pricelist")
@_url_option
def change_tariff(item, pricelist, url):
    """Move upstream item ITEM to the upstream tariff id PRICELIST, with its resources.

    The upstream's staff may change a vds's disk size this way; a reseller may not.

    \b
    resellctl sim change-tariff 4201 12
    """
    _call(url, "pricelist", {"item": item, "pricelist": pricelist})


@sim.command()
@click.argument("item")
@_url_option
def vanish(item, url):
    """Make upstream item ITEM disappear without a trace.

    No event; it is gone from every list, and reading it answers that there is no such service.

    \b
    resellctl sim vanish 4201
    """
    _call(url, "vanish", {"item": item})


@sim.command()
@click.argument("pricelist")
@click.argument("params", nargs=-1, metavar="[K=V]...")
@click.option("--expiredate", metavar="YYYY-MM-DD", help="Its expiry date (default: in a month).")
@click.option("--username", help="The account (default: the first one).")
@_url_option
def foreign(pricelist, params, expiredate, username, url):
    """Create an active service of upstream tariff id PRICELIST that the reseller never ordered.

    It has no remoteid and the parameters K=V; prints its upstream item id.

    \b
    resellctl sim foreign 11 ip=192.0.2.50
    """
    answer = _call(url, "foreign", {"pricelist": pricelist, "params": pairs(params, "a parameter"),
                                    "expiredate": expiredate, "username": username})
    click.echo(answer["item"])


@sim.command("expire-sessions")
@_url_option
def expire_sessions(url):
    """End every login session now (bm6, bm5): the next call with one answers auth.

    \b
    resellctl sim expire-sessions
    """
    _call(url, "expire-sessions")


@sim.command()
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@click.option("--func", default="*", show_default=True,
              help="Only requests whose func matches this pattern (fnmatch).")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many matching requests get the fault.")
@click.option("--seconds", type=click.FloatRange(min=0, max=3600), callback=_finite,
              help="The wait of a delay fault (at most an hour).")
@_url_option
def fault(kind, func, count, seconds, url):
    """Make the next API requests fail in the way KIND says.

    500, html, garbage, nodoc: a bad answer, nothing processed; delay: wait --seconds, then
    answer; drop: close the connection, nothing processed; drop_after_commit: process the
    request, then close the connection without answering.

    \b
    resellctl sim fault 500 --func 'vds.*' --count 2
    resellctl sim fault delay --seconds 5
    """
    if kind == "delay" and seconds is None:
        raise InputError("a delay fault needs --seconds")
    _call(url, "fault", {"kind": kind, "func": func, "count": count, "seconds": seconds})


@sim.command("clear-faults")
@_url_option
def clear_faults(url):
    """Forget the faults not yet used up.

    \b
    resellctl sim clear-faults
    """
    _call(url, "clear-faults")


@sim.command("fail-next-open")
@click.option("--msg", help="The reason the openfail event carries.")
@_url_option
def fail_next_open(msg, url):
    """Make the next opening of an ordered service fail upstream (refunded).

    \b
    resellctl sim fail-next-open --msg 'no capacity left'
    """
    _call(url, "fail-next-open", {"msg": msg})


@sim.command("open")
@_url_option
def open_(url):
    """Open every ordered service now, without waiting for an event poll or a read.

    \b
    resellctl sim open
    """
    _call(url, "open")


@sim.command()
@click.option("--items", type=click.IntRange(min=1, max=1_000_000), required=True,
              help="Active items to create.")
@click.option("--events", type=click.IntRange(min=0, max=10_000_000), default=0,
              show_default=True,
              help="setparam events to spread over them.")
@click.option("--first-remoteid", type=click.IntRange(min=1), default=1, show_default=True,
              help="The remoteid of the first item; the others follow.")
@click.option("--username", help="The account (default: the first one).")
@_url_option
def seed(items, events, first_remoteid, username, url):
    """Create a backlog: ITEMS active items and EVENTS events about them.

    Prints one line per item: the upstream item id and its remoteid, tab-separated.

    \b
    resellctl sim seed --items 1000 --events 10000
    """
    answer = _call(url, "seed", {"items": items, "events": events, "username": username,
                                 "first_remoteid": first_remoteid})
    click.echo("".join(f"{item}\t{remoteid}\n" for item, remoteid in answer["items"]),
               nl=False)


@sim.command()
@_url_option
def state(url):
    """Print the simulator's accounts and items as JSON.

    \b
    resellctl sim state
    """
    answer = _call(url, "state")
    answer.pop("ok")
    click.echo(json.dumps(answer, indent=2))

"""The admin endpoint, ``POST /sim/<action>`` with a JSON object: upstream-side actions and
fault injection for other processes (the CLI, scripts, benchmarks).

It has no credentials of its own, which is why the simulator listens on loopback by default.
"""

from dataclasses import asdict

from resellctl.sim.errors import ApiError
from resellctl.sim.state import OPENFAIL_MSG


class AdminError(Exception):
    """A refused admin request: answered with HTTP 400 and this message."""


def run(sim, action, body):
    """Run one admin action; the answer as a JSON-ready dict."""
    if action not in ACTIONS:
        raise AdminError(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    try:
        return {"ok": True, **(ACTIONS[action](sim, body) or {})}
    except ApiError as error:
        raise AdminError(f"{error.type}: {error.msg}") from None
    except (ValueError, TypeError) as error:
        raise AdminError(str(error)) from None


def _field(body, name):
    if body.get(name) is None:
        raise AdminError(f"missing field {name!r}")
    return body[name]


def _balance(sim, body):
    return {"balance": str(sim.balance(body.get("username"))), "currency": sim.currency}


def _topup(sim, body):
    sim.topup(_field(body, "amount"), body.get("username"))
    return _balance(sim, body)


def _set_balance(sim, body):
    sim.set_balance(_field(body, "amount"), body.get("username"))
    return _balance(sim, body)


def _params(body, required):
    """The body's ``params`` object; optional unless ``required``, then not empty either."""
    params = _field(body, "params") if required else body.get("params") or {}
    if not isinstance(params, dict) or (required and not params):
        raise AdminError(f"params must be a{' non-empty' if required else 'n'} object")
    return params


def _setparam(sim, body):
    sim.setparam(_field(body, "item"), **_params(body, required=True))


def _foreign(sim, body):
    item = sim.add_foreign(_field(body, "pricelist"), _params(body, required=False),
                           body.get("username"), body.get("expiredate"))
    return {"item": item}


def _seed(sim, body):
    pairs = sim.seed(_field(body, "items"), _field(body, "events"), body.get("username"),
                     int(body.get("first_remoteid", 1)), body.get("itemtype", "vds"),
                     body.get("pricelist", 11), _params(body, required=False))
    return {"items": pairs}


def _state(sim, body):
    with sim.lock:
        return {
            "api": sim.api, "quirks": sorted(sim.quirks), "sessions": len(sim.sessions),
            "password_requests": sim.password_requests(),
            "accounts": [{"username": a.username, "balance": str(a.balance),
                          "currency": sim.currency, "events": len(a.events),
                          "last_event": a.events.last_id} for a in sim.accounts.values()],
            "items": [asdict(item) for item in sim.items.values()],
        }


def _requests(sim, body):
    with sim.lock:
        return {"requests": list(sim.requests)}


ACTIONS = {
    "topup": _topup,
    "set-balance": _set_balance,
    "balance": _balance,
    "suspend": lambda sim, body: sim.suspend(_field(body, "item"), body.get("msg")),
    "resume": lambda sim, body: sim.resume(_field(body, "item")),
    "delete": lambda sim, body: sim.delete(_field(body, "item")),
    "setparam": _setparam,
    "addon": lambda sim, body: sim.set_addon(_field(body, "item"), _field(body, "name"),
                                             _field(body, "value")),
    "expiredate": lambda sim, body: sim.set_expiredate(_field(body, "item"),
                                                       _field(body, "date")),
    # the upstream's staff may change a vds's disk size; a reseller may not
    "pricelist": lambda sim, body: sim.changepricelist(_field(body, "item"),
                                                       _field(body, "pricelist"),
                                                       check_disk=False),
    "vanish": lambda sim, body: sim.vanish(_field(body, "item")),
    "foreign": _foreign,
    "expire-sessions": lambda sim, body: sim.expire_sessions(),
    "fault": lambda sim, body: sim.fault(_field(body, "kind"), body.get("func") or "*",
                                         body.get("count", 1), body.get("seconds")),
    "clear-faults": lambda sim, body: sim.clear_faults(),
    "fail-next-open": lambda sim, body: sim.fail_next_open(body.get("msg") or OPENFAIL_MSG),
    "open": lambda sim, body: sim.open_pending(),
    "seed": _seed,
    "state": _state,
    "requests": _requests,
}

"""The simulator's state: accounts, tariffs, items and their events, behind one lock.

The methods here are both what the API functions call and the upstream-side actions tests and
demos use (an abuse suspension, a changed parameter): either way the item changes and the
matching event is appended to its account's log.
"""

import secrets
import threading
import time
from collections import deque
from datetime import date

from resellctl.sim.dialects import check_dialect
from resellctl.sim.errors import ApiError, bad_value
from resellctl.sim.events import now_text
from resellctl.sim.faults import FaultQueue
from resellctl.sim.model import ACTIVE, DELETED, PROCESSING, SUSPENDED, Account, Item, money
from resellctl.sim.sessions import DEFAULT_IDLE, Sessions
from resellctl.sim.tariffs import add_months, default_tariffs

FIRST_ITEM_ID = 4201
OPENFAIL_MSG = "No free IP addresses"


class Simulator:
    """A selling BILLmanager's state; every method is thread-safe (one reentrant lock).

    Money is Decimal; ``username`` arguments default to the first account. ``api`` is the
    dialect it speaks (dialects.py): ``events``, or ``bm6`` / ``bm5`` with the ``quirks`` of
    real upstreams it is asked to show and sessions that end after ``session_idle`` seconds.
    """

    def __init__(self, username="reseller@example.net", password=None, balance="100.00",
                 currency="EUR", open_delay=0.0, api="events", quirks=(),
                 session_idle=DEFAULT_IDLE):
        self.lock = threading.RLock()
        self.api, self.quirks = check_dialect(api, quirks)
        self.sessions = Sessions(session_idle)
        self.currency = currency
        self.open_delay = float(open_delay)
        self.tariffs = default_tariffs()
        self.accounts = {}
        self.items = {}
        self.requests = []
        self.faults = FaultQueue()
        self._default_username = username
        self._next_item_id = FIRST_ITEM_ID
        self._pending = deque()  # (monotonic time it may open, item id), in order of orders
        self._open_failures = deque()
        self._opened = 0
        self.add_account(username, password or secrets.token_urlsafe(18), balance)

    # --- accounts and money ------------------------------------------------------------------

    def add_account(self, username, password, balance="0.00"):
        """Add a selling account with its own items and event log."""
        with self.lock:
            if username in self.accounts:
                raise ValueError(f"account {username!r} exists already")
            if not username or ":" in username or not password:
                raise ValueError("an account needs a username without ':' and a password")
            self.accounts[username] = Account(username, password, money(balance))

    def account(self, username=None):
        """The account named ``username`` (default: the first one)."""
        username = username or self._default_username
        try:
            return self.accounts[username]
        except KeyError:
            raise ValueError(f"no account {username!r}") from None

    def authenticate(self, username, password):
        """The account these credentials open, or None."""
        account = self.accounts.get(username)
        if account and secrets.compare_digest(account.password.encode(), password.encode()):
            return account
        return None

    def topup(self, amount, username=None):
        """Add ``amount`` to the balance; the new balance."""
        with self.lock:
            account = self.account(username)
            account.balance += money(amount)
            return account.balance

    def set_balance(self, amount, username=None):
        with self.lock:
            self.account(username).balance = money(amount)

    def balance(self, username=None):
        with self.lock:
            return self.account(username).balance

    def _charge(self, account, amount):
        if account.balance < amount:
            have, deficit = account.balance, amount - account.balance
            raise ApiError(
                "not_enough_money", "",
                f"Insufficient funds: {amount} {self.currency} required, "
                f"{have} {self.currency} available",
                amount=amount, have=have, currency=self.currency, deficit=deficit)
        account.balance -= amount

    # --- requests and faults -----------------------------------------------------------------

    def record_request(self, entry):
        """Log one API request (its entry must hold no password)."""
        with self.lock:
            self.requests.append(entry)

    def fault(self, kind, func="*", count=1, seconds=None):
        """Make the next ``count`` API requests whose func matches ``func`` get ``kind``."""
        with self.lock:
            self.faults.add(kind, func, count, seconds)

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def take_fault(self, func):
        """The fault the request for ``func`` gets, or None."""
        with self.lock:
            return self.faults.take(func)

    # --- items -------------------------------------------------------------------------------

    def item(self, item_id, account=None, itemtype=None):
        """The item ``item_id``; ``missing`` unless it belongs to ``account`` / ``itemtype``."""
        item = self.items.get(str(item_id).strip())
        if (item is None or (account is not None and item.account != account.username)
                or (itemtype is not None and item.itemtype != itemtype)):
            raise ApiError("missing", "elid", f"No service with id '{item_id}'")
        return item

    def _live_item(self, item_id):
        item = self.item(item_id)
        if item.status == DELETED:
            raise bad_value("elid", f"Service {item.id} is deleted")
        return item

    def _log(self, item, type, **fields):
        self.accounts[item.account].events.append(type, item, **fields)

    @staticmethod
    def _check_remoteid(account, remoteid):
        existing = account.remoteids.get(remoteid)
        if existing is not None:
            raise ApiError("exists", "remoteid",
                           f"The service with remoteid '{remoteid}' exists already: {existing}",
                           id=existing)

    def _new_item(self, account, tariff, remoteid, status, expiredate, period, params, addons,
                  datacenter=None):
        self._check_remoteid(account, remoteid)
        item = Item(str(self._next_item_id), account.username, remoteid, tariff.itemtype,
                    tariff.id, status, expiredate, period, params, addons, datacenter)
        self._next_item_id += 1
        self.items[item.id] = item
        if remoteid and self.api == "events":  # only this dialect promises de-duplication
            account.remoteids[remoteid] = item.id
        return item

    def tariff(self, pricelist, itemtype=None):
        """The tariff ``pricelist``; ``missing`` if unknown, ``value`` if of another itemtype."""
        tariff = self.tariffs.get(str(pricelist).strip())
        if tariff is None:
            raise ApiError("missing", "pricelist", f"No tariff with id '{pricelist}'")
        if itemtype is not None and tariff.itemtype != itemtype:
            raise bad_value("pricelist", f"Tariff {tariff.id} sells {tariff.itemtype}, "
                                         f"not {itemtype}")
        return tariff

    @staticmethod
    def _cost(tariff, period):
        try:
            return tariff.prices[period]
        except KeyError:
            raise bad_value("period", f"Tariff {tariff.id} is not sold for {period} months; "
                                      f"periods: {', '.join(map(str, tariff.prices))}") from None

    def order(self, account, tariff, period, remoteid, params=None, addons=None, datacenter=None):
        """Order an item (status 5, charged at once); it opens at a later event poll.

        ``addons`` maps addon ids to integer values that replace the tariff's.
        """
        with self.lock:
            self._check_remoteid(account, remoteid)  # the same order again: nothing else matters
            cost = self._cost(tariff, period)
            values = tariff.addon_values()
            for addon_id, value in (addons or {}).items():
                addon = tariff.addon(addon_id)
                if addon is None:
                    raise bad_value(f"addon_{addon_id}",
                                    f"Tariff {tariff.id} has no addon {addon_id}")
                values[addon.intname] = str(value)
            self._charge(account, cost)
            item = self._new_item(account, tariff, remoteid, PROCESSING, None, period,
                                  dict(params or {}), values, datacenter)
            self._pending.append((time.monotonic() + self.open_delay, item.id))
            return item

    def fail_next_open(self, msg=OPENFAIL_MSG):
        """Make the next opening fail upstream: an ``openfail`` event, the charge refunded."""
        with self.lock:
            self._open_failures.append(msg)

    def open_pending(self, due_only=False):
        """Open the ordered items (only those whose open delay has passed, if ``due_only``)."""
        with self.lock:
            now = time.monotonic()
            while self._pending and (not due_only or self._pending[0][0] <= now):
                item = self.items.get(self._pending.popleft()[1])
                if item is not None:  # None: it vanished before it could open
                    self._open(item)

    def _open(self, item):
        if item.status != PROCESSING:  # deleted before it could open
            return
        if self._open_failures:
            account = self.accounts[item.account]
            account.balance += self.tariffs[item.pricelist].prices[item.period]
            item.status = DELETED
            # Refunded and gone: the reseller may order this remoteid again (``exists`` is for
            # an item that exists, and adopting this one would wait for an opening forever).
            account.remoteids.pop(item.remoteid, None)
            self._log(item, "openfail", msg=self._open_failures.popleft())
            return
        self._opened += 1
        item.status = ACTIVE
        # A prolongation paid before the opening has set an expiry date already: add to it.
        start = date.fromisoformat(item.expiredate) if item.expiredate else date.today()
        item.expiredate = add_months(start, item.period).isoformat()
        if item.itemtype == "vds":
            item.params = {"ip": f"192.0.2.{(self._opened - 1) % 254 + 1}",
                           "hostname": f"vm{self._opened}.example", **item.params}
        self._log(item, "open", status=ACTIVE, expiredate=item.expiredate,
                  pricelist=item.pricelist, param=item.params, addon=item.addons)

    def prolong(self, item_id, period):
        """Charge ``period`` months and extend the item; the new expiry date."""
        with self.lock:
            item = self._live_item(item_id)
            self._charge(self.accounts[item.account],
                         self._cost(self.tariffs[item.pricelist], period))
            start = date.fromisoformat(item.expiredate) if item.expiredate else date.today()
            item.expiredate = add_months(start, period).isoformat()
            self._log(item, "prolong", expiredate=item.expiredate)
            return item.expiredate

    def set_expiredate(self, item_id, expiredate):
        """Set the expiry date upstream (a ``prolong`` event)."""
        with self.lock:
            item = self._live_item(item_id)
            item.expiredate = date.fromisoformat(str(expiredate)).isoformat()
            self._log(item, "prolong", expiredate=item.expiredate)

    def suspend(self, item_id, msg=None):
        """Suspend the item (``msg``: the reason the event carries)."""
        with self.lock:
            item = self._live_item(item_id)
            item.status = SUSPENDED
            self._log(item, "suspend", status=SUSPENDED, msg=msg)

    def resume(self, item_id):
        with self.lock:
            item = self._live_item(item_id)
            item.status = ACTIVE
            self._log(item, "resume", status=ACTIVE)

    def delete(self, item_id):
        """Delete the item (a ``close`` event); deleting it again changes nothing."""
        with self.lock:
            item = self.item(item_id)
            if item.status != DELETED:
                item.status = DELETED
                self._log(item, "close", status=DELETED)

    def changepricelist(self, item_id, pricelist, check_disk=True):
        """Move the item to another tariff of its itemtype, with that tariff's resources.

        A reseller cannot change a vds's disk size this way: that needs a manual processing
        module. The upstream's own staff can (``check_disk=False``).
        """
        with self.lock:
            item = self._live_item(item_id)
            tariff = self.tariff(pricelist, item.itemtype)
            disk = self.tariffs[item.pricelist].addon_values().get("disk")
            if check_disk and item.itemtype == "vds" and tariff.addon_values().get("disk") != disk:
                raise bad_value("pricelist", f"Tariff {tariff.id} has another disk size; "
                                             "change it through a manual processing module")
            item.pricelist = tariff.id
            item.addons = tariff.addon_values()
            self._log(item, "changepricelist", pricelist=item.pricelist, addon=item.addons)

    def setparam(self, item_id, **params):
        """Set parameters of the item (a ``setparam`` event carrying them)."""
        with self.lock:
            item = self._live_item(item_id)
            params = {str(k): str(v) for k, v in params.items()}
            item.params.update(params)
            self._log(item, "setparam", param=params)

    def set_addon(self, item_id, name, value):
        """Set one resource of the item (an ``addon`` event carrying it)."""
        with self.lock:
            item = self._live_item(item_id)
            item.addons[str(name)] = str(value)
            self._log(item, "addon", addon={str(name): str(value)})

    def vanish(self, item_id):
        """Make the item disappear upstream without a trace: no event, gone from every list,
        and reading it answers that there is no such service."""
        with self.lock:
            item = self.item(item_id)
            del self.items[item.id]
            account = self.accounts[item.account]
            if account.remoteids.get(item.remoteid) == item.id:
                del account.remoteids[item.remoteid]

    def add_foreign(self, pricelist, params=None, username=None, expiredate=None):
        """Create an active item the reseller never ordered (no remoteid, nothing charged), with
        an ``open`` event as for any item; its id."""
        with self.lock:
            account = self.account(username)
            tariff = self.tariff(pricelist)
            expiry = (date.fromisoformat(str(expiredate)) if expiredate
                      else add_months(date.today(), 1))
            params = {str(k): str(v) for k, v in (params or {}).items()}
            item = self._new_item(account, tariff, "", ACTIVE, expiry.isoformat(),
                                  min(tariff.prices), params, tariff.addon_values())
            self._log(item, "open", status=ACTIVE, expiredate=item.expiredate,
                      pricelist=item.pricelist, param=item.params, addon=item.addons)
            return item.id

    # --- sessions (the bm dialects) ----------------------------------------------------------

    def expire_sessions(self):
        """End every login session now, as an upstream's restart or its administrator does."""
        with self.lock:
            self.sessions.expire_all()

    def password_requests(self):
        """How many API requests carried a password (a login or an ``authinfo``), right or
        wrong: the password itself is never kept."""
        with self.lock:
            return sum(1 for entry in self.requests if entry.get("carried_password"))

    # --- the event feed ----------------------------------------------------------------------

    def events(self, username=None):
        """The account's kept events, as sent on the wire."""
        with self.lock:
            return self.account(username).events.decoded()

    def inject_event(self, record, username=None):
        """Append a raw event record, sent as given: for testing how a client copes with a
        malformed one. Returns the id of its place in the feed."""
        with self.lock:
            return self.account(username).events.append_raw(record)

    def next_event_id(self, username=None):
        """The id the account's next event will have."""
        with self.lock:
            return self.account(username).events.next_id

    def seed(self, items, events, username=None, first_remoteid=1, itemtype="vds",
             pricelist=11, params=None):
        """Create ``items`` active items, each with the parameters ``params``, then ``events``
        setparam events round-robin over them.

        Returns the (upstream item id, remoteid) pairs, both strings as on the wire.
        """
        items, events = int(items), int(events)
        if items < 0 or events < 0 or (events and not items):
            raise ValueError("seed needs items >= 0, events >= 0, and items for the events")
        with self.lock:
            account = self.account(username)
            tariff = self.tariff(pricelist, itemtype)
            for n in range(items):
                self._check_remoteid(account, str(first_remoteid + n))
            expiredate = add_months(date.today(), 1).isoformat()
            params = {str(k): str(v) for k, v in (params or {}).items()}
            created = [self._new_item(account, tariff, str(first_remoteid + n), ACTIVE,
                                      expiredate, 1, dict(params), tariff.addon_values())
                       for n in range(items)]
            when = now_text()
            for k in range(events):
                item = created[k % items]
                item.params["note"] = f"n{k}"
                account.events.append("setparam", item, when, param={"note": f"n{k}"})
            return [(item.id, item.remoteid) for item in created]

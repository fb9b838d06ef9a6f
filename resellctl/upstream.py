"""The client of an upstream selling BILLmanager: transport, auth, error classes, retries.

Every call is a form POST (PROTOCOL.md, Transport) on one keep-alive session whose adapters
never retry: retries live only here, in :func:`retrying`. Answers are sorted into the classes of
:mod:`resellctl.errors` (PROTOCOL.md's error table). No message, exception or repr made here
carries the password. However the upstream answers (slowly, endlessly, hugely, nested
without end), a call ends by its deadline with a bounded answer, or with an UpstreamError.
"""

import contextlib
import functools
import heapq
import http.client
import inspect
import itertools
import json
import os
import re
import socket
import ssl
import threading
import time
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, quote_plus, unquote, urlsplit

import requests
import tenacity
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from resellctl import __version__, bmdoc
from resellctl.errors import (AUTH, BALANCE, EXISTS, PERMANENT, TRANSIENT, InputError,
                              UpstreamError)
from resellctl.printable import one_line

MASK = "***"
_AUTHINFO = re.compile(r"(authinfo=)[^&\s'\"]*")
_AUTH_TYPES = {"auth", "invalid_login_or_passwd"}
# Fields that call() sets itself; a caller's params may not replace them.
_RESERVED = {"func", "out", "authinfo"}
# Fields an order and a parameter change set themselves: no service parameter may be one.
ORDER_FIELDS = ("pricelist", "period", "remoteid", "datacenter", "sok", "skipbasket",
                "clicked_button")
EDIT_FIELDS = ("elid", "sok")
# Exceptions that prove the connection was never established, so the request never left.
_NOT_SENT = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
             ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)
# tenacity 9.2 renamed wait_exponential_jitter's ``initial`` to ``multiplier``.
_FIRST_WAIT = ("multiplier" if "multiplier" in
               inspect.signature(tenacity.wait_exponential_jitter).parameters else "initial")
MiB = 2**20
_CHUNK = 64 * 1024  # bytes read at a time, decompressed, so the size cap acts as they come
# An answer may hold one JSON value per this many bytes of its size cap: 32 MiB of ``[{},{},...``
# would take 770 MiB as Python objects; an event page takes some 8 bytes of JSON per value.
_BYTES_PER_VALUE = 32


def _env_number(name, default, minimum=0.0, integer=False):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or value != value:  # value != value: NaN
        kind = "an integer" if integer else "a number"
        raise InputError(f"{name} must be {kind} of at least {minimum:g}, not {raw!r}")
    return value


def check_params(params, fields=()):
    """InputError naming the first of ``params`` that the protocol or the call sets itself."""
    clash = _RESERVED.union(fields).intersection(params or {})
    if clash:
        raise InputError(f"parameter {sorted(clash)[0]!r} is reserved for the protocol and "
                         "cannot be set on a service")


def _is_transient(exc):
    return isinstance(exc, UpstreamError) and exc.kind == TRANSIENT


def _is_unsent(exc):
    return _is_transient(exc) and not exc.maybe_sent


def retrying(retry_if=None, deadline=None):
    """A ``tenacity.Retrying`` for upstream calls, configured from the environment.

    Attempts: ``RESELLCTL_RETRY_ATTEMPTS`` (default 4), bounded in total by
    ``RESELLCTL_RETRY_MAX_SECONDS`` (default 30); waits grow exponentially from
    ``RESELLCTL_RETRY_WAIT`` (default 0.5 s, at most 8 s) plus a jitter of up to that initial wait,
    so ``RESELLCTL_RETRY_WAIT=0`` never sleeps. ``retry_if`` decides on the exception (default:
    an UpstreamError of kind TRANSIENT). ``deadline`` (a ``time.monotonic()`` value): no
    attempt starts after it, whatever the settings allow. After the last attempt the last
    exception itself is raised, never tenacity's RetryError.
    """
    attempts = _env_number("RESELLCTL_RETRY_ATTEMPTS", 4, minimum=1, integer=True)
    max_seconds = _env_number("RESELLCTL_RETRY_MAX_SECONDS", 30.0)
    initial = _env_number("RESELLCTL_RETRY_WAIT", 0.5)
    return tenacity.Retrying(
        stop=tenacity.stop_any(
            tenacity.stop_after_attempt(attempts), tenacity.stop_after_delay(max_seconds),
            lambda state: deadline is not None and time.monotonic() >= deadline),
        wait=tenacity.wait_exponential_jitter(max=8, jitter=initial, **{_FIRST_WAIT: initial}),
        retry=tenacity.retry_if_exception(retry_if or _is_transient),
        reraise=True,
    )


def redact(text, secrets):
    """``text`` with every ``authinfo=`` value and every non-empty secret replaced by ``***``."""
    text = _AUTHINFO.sub(r"\1" + MASK, str(text))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        # A secret made of mask characters, or one the mask completes, is removed outright.
        while secret in text:
            text = text.replace(secret, "")
    return text


def _clean(text, limit=None):
    """Upstream text fit for a one-line message, optionally shortened: its line breaks, control,
    bidi and other invisible characters spelled out (``\\n``, ``\\u202e``)."""
    text = str(text).strip()
    if limit and len(text) > limit:
        text = text[:limit - 3] + "..."
    return one_line(text)


def _chain(exc):
    """``exc`` and everything it wraps: args, causes, contexts, urllib3's ``reason``."""
    seen, todo = [], [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend(item.args)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
    return seen


def _reason(exc):
    """A short description of a transport failure, from the innermost informative exception."""
    for item in reversed(_chain(exc)):
        if isinstance(item, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(item, OSError) and item.strerror:
            return item.strerror
        if isinstance(item, http.client.RemoteDisconnected):
            return "the server closed the connection without an answer"
        if isinstance(item, http.client.HTTPException):
            # What http.client refuses: a header line too long, too many headers, a short body.
            return f"{type(item).__name__}: {_clean(item, 80)}"
    return type(exc).__name__


class _Call:
    """One call in flight: its deadline, and the socket the watchdog shuts down at it."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.cut = False  # the deadline came first: whatever failed, this is why
        self.done = False
        self._sock = None
        self._lock = threading.Lock()

    def watch(self, sock):
        with self._lock:
            self._sock = sock
            if self.cut:  # the deadline came while it connected
                _shut(sock)

    def expire(self):
        with self._lock:
            if not self.done:
                self.cut = True
                if self._sock is not None:
                    _shut(self._sock)

    def end(self):
        with self._lock:
            self.done = True
            self._sock = None  # back in the pool: another call's to use


class _Watchdog:
    """A daemon thread that, at the deadline of each call still in flight, shuts its socket.

    requests' read timeout bounds each wait for bytes, not the answer: a server that drips a
    byte a second holds a call for ever. The thread that calls (any thread: checkevent fetches
    pages in one of its own) hands its socket over (:class:`_WatchedConnection`); shut down,
    the socket ends the read in progress, of the status line, the headers or the body.
    One thread for every call, started once: a thread per call would cost an order more.
    """

    def __init__(self):
        self._wake = threading.Condition()
        self._calls = []  # a heap of (deadline, sequence number, _Call)
        self._sequence = itertools.count()
        self._thread = None
        self._local = threading.local()

    @contextlib.contextmanager
    def call(self, seconds):
        """The _Call of this thread within the block, which ends ``seconds`` from now."""
        call = _Call(time.monotonic() + seconds)
        with self._wake:
            heapq.heappush(self._calls, (call.deadline, next(self._sequence), call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="resellctl-deadlines")
                self._thread.start()
            elif self._calls[0][2] is call:
                self._wake.notify()
        self._local.call = call
        try:
            yield call
        finally:
            self._local.call = None
            call.end()

    def watch(self, sock):
        """Let the call in flight on this thread, if any, be cut at its deadline."""
        call = getattr(self._local, "call", None)
        if call is not None:
            call.watch(sock)

    def _run(self):
        with self._wake:
            while True:
                now = time.monotonic()
                while self._calls and (self._calls[0][0] <= now or self._calls[0][2].done):
                    heapq.heappop(self._calls)[2].expire()
                # TIMEOUT_MAX: a call timeout of "inf" means no deadline, not an overflow here.
                self._wake.wait(min(self._calls[0][0] - now, threading.TIMEOUT_MAX)
                                if self._calls else None)


_WATCHDOG = _Watchdog()


def _shut(sock):
    with contextlib.suppress(OSError):
        # socket.socket's own shutdown, for TLS too: ssl's would unwrap it under the reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection:
    """A urllib3 connection that the call sending on it may cut at its deadline."""

    def request(self, *args, **kwargs):
        # Connecting (bounded by the connect timeout) is done once the request is sent; the
        # waits for the answer come after. The socket itself is watched: the answer keeps
        # reading from it after a ``Connection: close`` has detached it from the connection.
        super().request(*args, **kwargs)
        _WATCHDOG.watch(self.sock)


@functools.cache
def _watched(pool_class):
    """``pool_class`` whose connections are _WatchedConnections."""
    connection = type(f"Watched{pool_class.ConnectionCls.__name__}",
                      (_WatchedConnection, pool_class.ConnectionCls), {})
    return type(f"Watched{pool_class.__name__}", (pool_class,), {"ConnectionCls": connection})


class _Adapter(HTTPAdapter):
    """requests' adapter whose pools, direct or through a proxy, make _WatchedConnections."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def _watch_pools(manager):
    manager.pool_classes_by_scheme = {scheme: _watched(pool) for scheme, pool
                                      in manager.pool_classes_by_scheme.items()}
    return manager


class Client:
    """One upstream account of a selling BILLmanager (one processing module)."""

    def __init__(self, url, username, password, timeout=None, session=None):
        parts = urlsplit(str(url))
        secrets = [password, quote(password, safe=""), quote_plus(password)]
        if parts.password:
            secrets += [parts.password, unquote(parts.password)]
        self._secrets = secrets
        self.host = parts.netloc.rpartition("@")[2]
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"the upstream URL must be http:// or https:// with a host, not "
                             f"{self.redact(parts.scheme + '://' + self.host + parts.path)!r}")
        if parts.query or parts.fragment:
            raise InputError(f"the upstream URL for {self.host} must not have a query or a "
                             f"fragment: credentials travel in the POST body only")
        self.url = url
        self.username = username
        self._authinfo = f"{username}:{password}"
        if timeout is None:
            timeout = (_env_number("RESELLCTL_CONNECT_TIMEOUT", 5.0, minimum=0.1),
                       _env_number("RESELLCTL_READ_TIMEOUT", 30.0, minimum=0.1))
        self.timeout = timeout
        # Seconds a call may take from connecting to the last byte of the answer.
        self.call_timeout = _env_number("RESELLCTL_CALL_TIMEOUT", 60.0, minimum=0.1)
        self.max_answer = int(_env_number("RESELLCTL_MAX_ANSWER_MB", 32.0, minimum=0.01) * MiB)
        # A time.monotonic() value past which no call runs and no retry starts (checkevent's
        # time budget).
        self.deadline = None
        if session is None:
            # Retries live in retrying() only: urllib3 must never re-send on its own.
            session = requests.Session()
            session.mount("http://", _Adapter(max_retries=0))
            session.mount("https://", _Adapter(max_retries=0))
            session.headers["User-Agent"] = f"resellctl/{__version__}"
            # The environment's proxy and CA bundle, read once: requests would otherwise read
            # the whole environment (and look for a ~/.netrc) again on every call, a fifth of
            # an order's time. A netrc login has no use here: credentials go in the body.
            session.proxies.update(requests.utils.get_environ_proxies(url))
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
            session.trust_env = False
        self.session = session

    def __repr__(self):
        return f"Client(host={self.host!r}, username={self.username!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the keep-alive connections."""
        self.session.close()

    @contextlib.contextmanager
    def recording(self):
        """Within this block calls send nothing: each appends the form it would POST (the
        password masked) to the yielded list and gets an empty success."""
        sent = []

        def record(func, data):
            sent.append({k: (f"{self.username}:{MASK}" if k == "authinfo" else v)
                         for k, v in data.items()})
            return {"id": {"$": "(new)"}, "newexpiredate": {"$": "(new)"}, "ok": {}}

        self._send = record
        try:
            yield sent
        finally:
            del self._send

    def redact(self, text):
        """``text`` without this client's password, in any of its encodings."""
        return redact(text, self._secrets)

    def _safe(self, text, limit=None):
        # Redacted before cleaning (which could split a password with blanks in it) and after
        # (which could join one).
        return self.redact(_clean(self.redact(text), limit))

    # -- the transport ------------------------------------------------------------------------

    def call(self, func, params=None, retry=True):
        """Call ``func`` with ``params``; return the ``doc`` of a successful answer.

        ``retry``: True retries transient failures; ``"unsent"`` retries only those where the
        request never left (for calls that must not be applied twice); False sends once.
        Raises UpstreamError of the class PROTOCOL.md's error table gives.
        """
        return self._call(func, params, retry)

    def _call(self, func, params, retry, parse=None):
        """call(), with ``parse`` turning the doc into a value inside each attempt.

        ``parse`` raises ValueError (or KeyError, TypeError, ...) for an answer of the wrong shape,
        which is garbage like a body without ``doc``: transient, and retried as such.
        """
        if retry not in (True, False, "unsent"):
            raise ValueError(f"retry must be True, False or 'unsent', not {retry!r}")
        data = self._form(func, params)

        def attempt_once():
            doc = self._send(func, data)
            if parse is None:
                return doc
            try:
                return parse(doc)
            except (ValueError, LookupError, TypeError, AttributeError, InvalidOperation) as exc:
                what = f"no {exc}" if isinstance(exc, KeyError) else str(exc) or "invalid"
                error = self._transient(func, f"the answer has an unexpected shape ({what})",
                                        maybe_sent=True)
            raise error

        if retry is False:
            return attempt_once()
        attempts = 0
        try:
            for attempt in retrying(_is_transient if retry is True else _is_unsent,
                                    self.deadline):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return attempt_once()
        except UpstreamError as exc:
            if attempts > 1:
                self._amend(exc, f"; gave up after {attempts} attempts")
            elif retry == "unsent" and exc.kind == TRANSIENT and exc.maybe_sent:
                self._amend(exc, "; not re-sent automatically")
            raise

    def _form(self, func, params):
        check_params(params)
        data = {str(k): str(v) for k, v in (params or {}).items() if v is not None}
        data.update(func=func, out="json", authinfo=self._authinfo)
        return data

    def _send(self, func, data):
        """One POST; the doc of a successful answer, else UpstreamError.

        The call ends by its deadline, from connecting to the last byte of the answer: the
        sooner of ``call_timeout`` from now and the run's ``deadline``.
        """
        seconds, limit = self.call_timeout, ""
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left < seconds:
            if left <= 0:
                raise self._transient(func, "the run's time budget is spent", maybe_sent=False)
            seconds, limit = left, ", the end of the run's time budget"
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        with _WATCHDOG.call(seconds) as call:
            try:
                response = self.session.post(self.url, data=data, stream=True,
                                             timeout=(min(connect, seconds), read),
                                             allow_redirects=False)
                with response:
                    body = self._body(func, response)
            except requests.RequestException as exc:
                error = self._transport_error(func, exc, min(connect, seconds), read)
                if call.cut and error.maybe_sent:
                    # The watchdog shut the socket down: whatever broke next, that is why.
                    error = self._transient(func, f"the answer did not complete within "
                                            f"{round(seconds, 1):g} s{limit}", maybe_sent=True)
            else:
                error = None
        # Raised outside the except block, so the error holds no reference to the request
        # (whose body has the credentials).
        if error is not None:
            raise error
        return self._doc(func, response, body)

    def _body(self, func, response):
        """The body of a 200 answer, decompressed, read up to the size cap; else UpstreamError."""
        if response.status_code != 200:
            what = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
            if response.is_redirect:
                # Never followed (the body holds the credentials), and retrying will not help.
                where = self._safe(response.headers["Location"], 200)
                what += f", a redirect to {where!r} (check the module's --url)"
            raise self._transient(func, what, maybe_sent=True)
        length = response.headers.get("Content-Length", "")
        body = bytearray()
        if not (length.isdigit() and int(length) > self.max_answer):
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > self.max_answer:
                    break
            else:
                return body
        cap = round(self.max_answer / MiB, 3)
        raise self._transient(func, f"the answer is larger than {cap:g} MiB "
                              "(RESELLCTL_MAX_ANSWER_MB)", maybe_sent=True)

    def _transport_error(self, func, exc, connect, read):
        if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                            requests.exceptions.InvalidURL)):
            return UpstreamError(PERMANENT, self.redact(f"{func} on {self.host}: invalid upstream "
                                                        f"URL ({type(exc).__name__})"))
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return self._transient(func, f"no connection within {connect:g} s", maybe_sent=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return self._transient(func, f"no answer within {read:g} s", maybe_sent=True)
        if isinstance(exc, requests.exceptions.ConnectionError) and any(
                isinstance(item, _NOT_SENT) for item in _chain(exc)):
            return self._transient(func, f"cannot connect: {_reason(exc)}", maybe_sent=False)
        # A dropped connection, a broken chunked body, anything else: it may have arrived.
        return self._transient(func, f"connection lost before the answer: {_reason(exc)}",
                               maybe_sent=True)

    def _doc(self, func, response, body):
        """The ``doc`` of a body read whole, else UpstreamError (malformed answers: transient)."""
        most = self.max_answer // _BYTES_PER_VALUE
        # Counted before decoding, which takes up to a hundred bytes a value; every value but
        # the first follows a '[', ',' or ':', and takes a byte at least.
        if len(body) > most and 1 + sum(map(body.count, (b"[", b",", b":"))) > most:
            raise self._transient(func, f"the answer holds more than {most:,} values "
                                  "(RESELLCTL_MAX_ANSWER_MB)", maybe_sent=True)
        try:
            body = json.loads(body)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            text = body[:200].decode("utf-8", "replace")
            raise self._transient(func, f"the answer is not JSON ({kind}: "
                                  f"{self._safe(text, 60)!r})", maybe_sent=True) from None
        except (RecursionError, MemoryError) as exc:
            why = "nests too deep" if isinstance(exc, RecursionError) else "is too large"
            raise self._transient(func, f"the answer {why} to decode", maybe_sent=True) from None
        if not isinstance(body, dict) or not isinstance(body.get("doc"), dict):
            raise self._transient(func, "the answer is JSON without a doc", maybe_sent=True)
        doc = body["doc"]
        if "error" in doc:
            raise self._upstream_error(func, doc["error"])
        return doc

    def _upstream_error(self, func, error):
        """The UpstreamError for a ``doc.error``, sorted as PROTOCOL.md's table says."""
        try:
            if not isinstance(error, dict):
                raise ValueError("not an object")
            etype = bmdoc.text(error.get("$type"), "") or "unknown"
            eobject = bmdoc.text(error.get("$object"), "")
            msg = bmdoc.text(error.get("msg"), "")
            params = bmdoc.named_values(error.get("param"))
        except ValueError as exc:
            return self._transient(func, f"the error answer is malformed ({exc})",
                                   maybe_sent=True)
        etype, eobject, msg = (self._safe(s) for s in (etype, eobject, msg))
        # Params reach hints ("top up by at least {deficit} {currency}") and the books.
        params = {self._safe(k): self._safe(v) for k, v in params.items()}
        where = f"{func} on {self.host}"
        details = dict(type=etype, object=eobject, params=params)
        if etype in _AUTH_TYPES:
            return self._error(AUTH, f"{where}: login refused for user {self.username!r}", msg,
                               hint="check the module's username and password", **details)
        if etype == "not_enough_money":
            deficit = params.get("deficit")
            hint = "top up the selling account"
            if deficit:
                hint += f" by at least {deficit} {params.get('currency', '')}".rstrip()
            return self._error(BALANCE, f"{where}: not enough money on the selling account", msg,
                               hint=hint, **details)
        if etype == "exists":
            existing = f" as item {params['id']}" if params.get("id") else ""
            return self._error(EXISTS, f"{where}: already exists upstream{existing}", msg,
                               **details)
        refused = f"{etype} of {eobject}" if eobject else etype
        hint = "this is a bug in resellctl, please report it" if etype == "missed" else None
        return self._error(PERMANENT, f"{where}: upstream refused: {refused}", msg, hint=hint,
                           **details)

    def _error(self, kind, message, msg, hint=None, **details):
        return UpstreamError(kind, self.redact(f"{message}: {msg}" if msg else message),
                             hint=hint and self.redact(hint), **details)

    def _transient(self, func, what, maybe_sent):
        fate = ("the request may have reached the upstream" if maybe_sent
                else "the request was not sent")
        message = f"{func} on {self.host}: {what} (a temporary failure; {fate})"
        return UpstreamError(TRANSIENT, self._safe(message), maybe_sent=maybe_sent)

    def _amend(self, exc, suffix):
        exc.message = self.redact(exc.message + suffix)
        exc.args = (exc.message,)

    # -- the functions resellctl uses (PROTOCOL.md, Functions) --------------------------------

    def pricelists(self, itemtype=None):
        """The tariffs the account may order, as plain dicts (see PROTOCOL.md)."""
        return self._call("pricelist.export", {"itemtype": itemtype}, True,
                          lambda doc: [_pricelist(p) for p in bmdoc.as_list(doc.get("pricelist"))])

    def order(self, itemtype, pricelist, period, remoteid, datacenter=None, addons=None,
              params=None, retry=True):
        """Order a service; return the upstream item id.

        ``addons`` is ``{addon_id: value}``; ``params`` are plain service fields. Re-sending is
        safe: a used ``remoteid`` answers UpstreamError(EXISTS) whose ``params["id"]`` is the
        existing item, which the caller adopts.
        """
        fields = dict(zip(ORDER_FIELDS, (pricelist, period, remoteid, datacenter, "ok", "on",
                                         "finish")))
        fields.update({f"addon_{k}": v for k, v in (addons or {}).items()})
        check_params(params, fields)
        fields.update(params or {})
        return self._call(f"{itemtype}.order.param", fields, retry, _required("id"))

    def prolong(self, elid, period, retry="unsent"):
        """Extend an item by ``period`` months; return its new expiry date."""
        return self._call("service.prolong", {"elid": elid, "period": period, "sok": "ok"},
                          retry, _required("newexpiredate"))

    def suspend(self, itemtype, elid, retry="unsent"):
        """Suspend an item; the change itself arrives later as an event."""
        self._call(f"{itemtype}.suspend", {"elid": elid}, retry)

    def resume(self, itemtype, elid, retry="unsent"):
        """Resume a suspended item; the change itself arrives later as an event."""
        self._call(f"{itemtype}.resume", {"elid": elid}, retry)

    def delete(self, itemtype, elid, retry="unsent"):
        """Delete an item; the change itself arrives later as an event."""
        self._call(f"{itemtype}.delete", {"elid": elid}, retry)

    def changepricelist(self, elid, pricelist, retry="unsent"):
        """Move an item to another upstream tariff."""
        self._call("service.changepricelist", {"elid": elid, "pricelist": pricelist,
                                               "sok": "ok"}, retry)

    def edit_write(self, itemtype, elid, params, retry="unsent"):
        """Set an item's parameters (``{name: value}``)."""
        check_params(params, EDIT_FIELDS)
        self._call(f"{itemtype}.edit", {**params, "elid": elid, "sok": "ok"}, retry)

    def edit_read(self, itemtype, elid, retry=True):
        """An item as the upstream sees it: id, remoteid, status, expiredate, pricelist,
        params and addons (both ``{name: value}``)."""
        def parse(doc):
            item = {k: bmdoc.text(doc.get(k))
                    for k in ("id", "remoteid", "status", "expiredate", "pricelist")}
            if item["id"] is None:
                raise ValueError("no id")
            item["params"] = bmdoc.named_values(doc.get("param"))
            item["addons"] = bmdoc.named_values(doc.get("addon"))
            return item
        return self._call(f"{itemtype}.edit", {"elid": elid}, retry, parse)

    def balance(self):
        """The selling account's balance as ``(Decimal, currency)``."""
        def parse(doc):
            elems = bmdoc.as_list(doc.get("elem"))
            if not elems or not isinstance(elems[0], dict):
                raise ValueError("no account")
            balance = Decimal(bmdoc.text(elems[0]["balance"]))
            if not balance.is_finite():
                raise ValueError(f"balance {balance}")
            return balance, bmdoc.text(elems[0]["currency"])
        return self._call("subaccount", None, True, parse)

    def events(self, after, limit=1000):
        """The events after event id ``after``, oldest first, and whether more wait.

        The events are the raw ``elem`` objects: the caller parses each one itself, so that a
        malformed event is recorded and passed rather than failing the page.
        """
        def parse(doc):
            elems = bmdoc.as_list(doc.get("elem"))
            more = bmdoc.text(doc.get("more"), "off") == "on"
            if more and not elems:
                raise ValueError("more events announced, none sent")
            return elems, more
        return self._call("item.event.list", {"after": after, "limit": limit}, True, parse)

    def ack(self, upto):
        """Let the upstream discard the events up to ``upto`` (an applied event id)."""
        self._call("item.event.ack", {"upto": upto}, True)


def _required(name):
    """A parser returning the scalar ``doc[name]``, which must be there."""
    def parse(doc):
        value = bmdoc.text(doc.get(name))
        if not value:
            raise ValueError(f"no {name}")
        return value
    return parse


def _pricelist(node):
    price = node.get("price") or {}
    if not isinstance(price, dict):
        raise ValueError("price is not an object")
    return {
        "id": bmdoc.text(node["id"]),
        "name": bmdoc.text(node.get("name"), ""),
        "itemtype": bmdoc.text(node.get("itemtype"), ""),
        "currency": bmdoc.text(price.get("$currency"), ""),
        "periods": {_months(bmdoc.text(p["$length"])): bmdoc.text(p["$cost"])
                    for p in bmdoc.as_list(price.get("period"))},
        "addons": [{key: bmdoc.text(a.get(key), "")
                    for key in ("id", "intname", "value", "measure")}
                   for a in bmdoc.as_list(node.get("addon"))],
    }


def _months(length):
    """A period's ``$length``, which the books keep as an integer: months, or BM's codes
    (``-100`` trial, ``-50`` day, ``0`` lifetime)."""
    if not re.fullmatch(r"-?[0-9]{1,6}", length or ""):
        raise ValueError(f"period length {length!r}")
    return length


class Upstreams:
    """The clients of a store's billmanager modules, one per module, made when first needed
    and closed together. ``password(module)`` gives a module's password (the store keeps it
    apart from the books)."""

    def __init__(self, password):
        self._password = password
        self._clients = {}

    def client(self, module):
        """The client of billmanager ``module`` (a row of processingmodule)."""
        if module["id"] not in self._clients:
            self._clients[module["id"]] = Client(module["url"], module["username"],
                                                 self._password(module))
        return self._clients[module["id"]]

    def close(self):
        for client in self._clients.values():
            client.close()
        self._clients.clear()

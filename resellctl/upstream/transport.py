"""The transport to an upstream selling BILLmanager: one place for what every call shares.

Every call is a form POST (docs/protocol.md, "Transport") on one keep-alive session whose
adapters never retry: retries live only here, in :func:`retrying`. The credentials go in each
form (``authinfo``), or, for an upstream that wants sessions, in one login per run whose
session id the later calls carry (``auth``; renewed once when it ends). Answers are sorted into
the classes of :mod:`resellctl.errors` (docs/protocol.md, "Errors"). However the upstream
answers (slowly, endlessly, hugely, nested without end), a call ends by its deadline with a
bounded answer, or with an UpstreamError. No message, exception or repr made here carries the
password or a session id. What each dialect calls is its client's (calls.py, bm.py).
"""

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import time
from decimal import InvalidOperation
from urllib.parse import quote, quote_plus, unquote, urlsplit

import requests
import urllib3.exceptions

from resellctl import __version__, bmdoc
from resellctl.errors import (AUTH, BALANCE, EXISTS, PERMANENT, TRANSIENT, InputError,
                              UpstreamError)
from resellctl.printable import one_line
from resellctl.upstream import check_params
from resellctl.upstream.retries import env_number, retried
from resellctl.upstream.watchdog import WATCHDOG, Adapter

MASK = "***"
_AUTHINFO = re.compile(r"(authinfo=)[^&\s'\"]*")
_AUTH_TYPES = {"auth", "invalid_login_or_passwd"}
# Exceptions that prove the connection was never established, so the request never left.
_NOT_SENT = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
             ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)
# Statuses of a 4xx answer that say "later", not "wrong": a timeout, too many requests.
_RETRYABLE_4XX = {408, 429}
MiB = 2**20
_CHUNK = 64 * 1024  # bytes read at a time, decompressed, so the size cap acts as they come
# An answer may hold one JSON value per this many bytes of its size cap: 32 MiB of ``[{},{},...``
# would take 770 MiB as Python objects; an event page takes some 8 bytes of JSON per value.
_BYTES_PER_VALUE = 32


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


class Transport:
    """The calls to one upstream account (one processing module): ``call()`` sends a function
    and returns the ``doc`` of its answer, or raises UpstreamError.

    ``login``: the upstream wants a session (``func=auth`` once a run, then ``auth=<id>``)
    rather than the credentials in every form. ``module`` names the module in hints.
    ``trace(func, seconds, outcome)`` is told of every request (``-v``), ``notify(message)``
    of every retry; neither ever sees a password or a session id.
    """

    def __init__(self, url, username, password, *, module="", login=False, timeout=None,
                 session=None):
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
        self.module = module
        self.login = login
        self._password = password
        self._session_id = None
        self.logins = 0  # requests that carried the password
        self.trace = self.notify = None
        self._recorded = None
        if timeout is None:
            timeout = (env_number("RESELLCTL_CONNECT_TIMEOUT", 5.0, minimum=0.1),
                       env_number("RESELLCTL_READ_TIMEOUT", 30.0, minimum=0.1))
        self.timeout = timeout
        # Seconds a call may take from connecting to the last byte of the answer.
        self.call_timeout = env_number("RESELLCTL_CALL_TIMEOUT", 60.0, minimum=0.1)
        self.max_answer = int(env_number("RESELLCTL_MAX_ANSWER_MB", 32.0, minimum=0.01) * MiB)
        if session is None:
            # Retries live in retrying() only: urllib3 must never re-send on its own.
            session = requests.Session()
            session.mount("http://", Adapter(max_retries=0))
            session.mount("https://", Adapter(max_retries=0))
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
        return f"Transport(host={self.host!r}, username={self.username!r})"

    def close(self):
        """Close the keep-alive connections."""
        self.session.close()

    @contextlib.contextmanager
    def recording(self):
        """Within this block calls send nothing: each appends the form it would POST (the
        credentials masked) to the yielded list and gets an empty success."""
        self._recorded = []
        try:
            yield self._recorded
        finally:
            self._recorded = None

    def redact(self, text):
        """``text`` without this transport's password or session id, in any encoding."""
        return redact(text, self._secrets)

    def _safe(self, text, limit=None):
        # Redacted before cleaning (which could split a password with blanks in it) and after
        # (which could join one).
        return self.redact(_clean(self.redact(text), limit))

    # -- calls ---------------------------------------------------------------------------------

    def call(self, func, params=None, *, retry=True, parse=None, deadline=None):
        """Call ``func`` with ``params``; the ``doc`` of a successful answer, made a value by
        ``parse`` (which raises ValueError, KeyError, ... for an answer of the wrong shape:
        garbage, like a body without ``doc``, and retried as such).

        ``retry``: True retries transient failures (``retries.retried``); False sends once.
        ``deadline`` (a ``time.monotonic()`` value): the call ends by it, and no retry starts
        after it. Raises UpstreamError of the class docs/protocol.md's error table gives.
        """
        check_params(params)
        fields = {str(k): str(v) for k, v in (params or {}).items() if v is not None}

        def once():
            doc = self._authorised(func, fields, deadline)
            if parse is None:
                return doc
            try:
                return parse(doc)
            except (ValueError, LookupError, TypeError, AttributeError, InvalidOperation) as exc:
                what = f"no {exc}" if isinstance(exc, KeyError) else str(exc) or "invalid"
                error = self._transient(func, f"the answer has an unexpected shape ({what})",
                                        maybe_sent=True)
            raise error

        return retried(once, deadline, self.notify) if retry else once()

    def _authorised(self, func, fields, deadline):
        """One request of ``func`` with its credentials. A session that ended (an ``auth``
        error on a call made with it) is opened once more and the call repeated; a second
        ``auth`` error is the credentials' failure."""
        if self._recorded is not None:
            masked = {"auth": MASK} if self.login else {"authinfo": f"{self.username}:{MASK}"}
            self._recorded.append({**fields, "func": func, "out": "json", **masked})
            return {"id": {"$": "(new)"}, "newexpiredate": {"$": "(new)"}, "ok": {}}
        if not self.login:
            return self._send(func, {**fields, "func": func, "out": "json",
                                     "authinfo": f"{self.username}:{self._password}"}, deadline)
        fresh = self._session_id is None
        if fresh:
            self._open_session(deadline)
        try:
            return self._send(func, {**fields, "func": func, "out": "json",
                                     "auth": self._session_id}, deadline)
        except UpstreamError as error:
            if error.kind != AUTH or fresh:
                raise
        self._session_id = None
        self._open_session(deadline)
        return self._send(func, {**fields, "func": func, "out": "json",
                                 "auth": self._session_id}, deadline)

    def _open_session(self, deadline):
        """Log in: the one request of a run that carries the password."""
        self.logins += 1
        doc = self._send("auth", {"func": "auth", "out": "json", "username": self.username,
                                  "password": self._password}, deadline)
        node = doc.get("auth")
        try:
            session_id = (node.get("$id") if isinstance(node, dict) else None) or bmdoc.text(node)
        except ValueError:
            session_id = None
        if not isinstance(session_id, str) or not session_id.strip():
            raise self._transient("auth", "the login answer holds no session id",
                                  maybe_sent=True)
        self._session_id = session_id.strip()
        self._secrets.append(self._session_id)

    def _send(self, func, data, deadline):
        """One POST; the doc of a successful answer, else UpstreamError.

        The call ends by its deadline, from connecting to the last byte of the answer: the
        sooner of ``call_timeout`` from now and the caller's ``deadline``.
        """
        seconds, limit = self.call_timeout, ""
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < seconds:
            if left <= 0:
                raise self._transient(func, "the run's time budget is spent", maybe_sent=False)
            seconds, limit = left, ", the end of the run's time budget"
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        started = time.monotonic()
        with WATCHDOG.call(seconds) as call:
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
            except UpstreamError as exc:
                error = exc
            else:
                error = None
            if error is None:
                try:
                    doc = self._doc(func, response, body)
                except UpstreamError as exc:
                    error = exc
        if self.trace is not None:
            self.trace(func, time.monotonic() - started, "ok" if error is None else
                       error.kind if error.type == error.kind else f"{error.kind}: {error.type}")
        # Raised outside the except block, so the error holds no reference to the request
        # (whose body has the credentials).
        if error is not None:
            raise error
        return doc

    def _body(self, func, response):
        """The body of a 200 answer, decompressed, read up to the size cap; else UpstreamError.

        Another status is a temporary failure (a 5xx, a 408 or 429), or one that waiting will
        not mend: a redirect (never followed: the body holds the credentials) or any other 4xx
        says the module's URL is wrong.
        """
        status = response.status_code
        if status != 200:
            what = f"HTTP {status} {response.reason or ''}".rstrip()
            if response.is_redirect:
                where = self._safe(response.headers["Location"], 200)
                what += f", a redirect to {where!r}"
            if response.is_redirect or (400 <= status < 500 and status not in _RETRYABLE_4XX):
                raise UpstreamError(PERMANENT, self._safe(f"{func} on {self.host}: {what}"),
                                    type=f"http_{status}", hint=self._url_hint())
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

    def _url_hint(self):
        edit = f"resellctl modules edit {self.module} --url URL" if self.module else "--url"
        return f"Check the module's URL ({self.url}); fix it with: {edit}"

    def _transport_error(self, func, exc, connect, read):
        if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                            requests.exceptions.InvalidURL)):
            return UpstreamError(PERMANENT, self.redact(f"{func} on {self.host}: invalid upstream "
                                                        f"URL ({type(exc).__name__})"),
                                 hint=self._url_hint())
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate or a handshake that fails now fails the next time too: the URL
            # (https on a port that speaks it), the host's certificate or REQUESTS_CA_BUNDLE.
            return UpstreamError(PERMANENT, self._safe(f"{func} on {self.host}: TLS failed: "
                                                       f"{_reason(exc)}"),
                                 type="tls", hint=self._url_hint() + " (or the CA bundle in "
                                 "REQUESTS_CA_BUNDLE)")
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
        body_bytes = body
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
        if b"\\ud" in body_bytes or b"\\uD" in body_bytes:
            # JSON may escape half of a surrogate pair alone: no text, and the books' UTF-8
            # refuses it. Each such half becomes U+FFFD, as undecodable bytes do.
            body = _whole_text(body)
        doc = body["doc"]
        if "error" in doc:
            raise self._upstream_error(func, doc["error"])
        return doc

    def _upstream_error(self, func, error):
        """The UpstreamError for a ``doc.error``, sorted as docs/protocol.md's table says."""
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
            fix = (f"resellctl modules edit {self.module} --username USER --password-file FILE"
                   if self.module else "--username and --password-file")
            return self._error(AUTH, f"{where}: login refused for user {self.username!r}", msg,
                               hint=f"check the module's username and password: {fix}",
                               **details)
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


def _whole_text(node):
    """``node`` (decoded JSON) with every lone surrogate of its strings made U+FFFD."""
    def whole(text):
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    root = [node]
    todo = [(root, 0)]
    while todo:
        container, key = todo.pop()
        value = container[key]
        if isinstance(value, str):
            container[key] = whole(value)
        elif isinstance(value, list):
            todo.extend((value, i) for i in range(len(value)))
        elif isinstance(value, dict):
            for name in list(value):
                if isinstance(name, str) and whole(name) != name:
                    value[whole(name)] = value.pop(name)
            todo.extend((value, name) for name in value)
    return root[0]

"""The transport to an upstream selling BILLmanager: one place for what every call shares.

Every call is a form POST (docs/protocol.md, "Transport") on one keep-alive session whose
adapters never retry: retries live only here, in :func:`retrying`. The credentials go in each
form (``authinfo``), or, for an upstream that wants sessions, in one login per run whose
session id the later calls carry (``auth``; renewed once when it ends). Answers are read and
sorted into the classes of :mod:`resellctl.errors` by answers.py. However the upstream
answers (slowly, endlessly, hugely, nested without end), a call ends by its deadline with a
bounded answer, or with an UpstreamError. No message, exception or repr made here carries the
password or a session id. What each dialect calls is its client's (calls.py, bm.py).
"""

import contextlib
import os
import re
import time
from decimal import InvalidOperation
from urllib.parse import quote, quote_plus, unquote, urlsplit

import requests

from resellctl import __version__, bmdoc
from resellctl.errors import AUTH, InputError, UpstreamError
from resellctl.upstream import check_params
from resellctl.upstream.answers import Answers
from resellctl.upstream.retries import env_number, retried
from resellctl.upstream.watchdog import WATCHDOG, Adapter

MASK = "***"
_AUTHINFO = re.compile(r"(authinfo=)[^&\s'\"]*")
MiB = 2**20


def redact(text, secrets):
    """``text`` with every ``authinfo=`` value and every non-empty secret replaced by ``***``."""
    text = _AUTHINFO.sub(r"\1" + MASK, str(text))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        # A secret made of mask characters, or one the mask completes, is removed outright.
        while secret in text:
            text = text.replace(secret, "")
    return text


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
        self.answers = Answers(self)

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
                error = self.answers.malformed(func, f"the answer has an unexpected shape ({what})")
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
            raise self.answers.transient("auth", "the login answer holds no session id",
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
                raise self.answers.transient(func, "the run's time budget is spent",
                                             maybe_sent=False)
            seconds, limit = left, ", the end of the run's time budget"
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        started = time.monotonic()
        with WATCHDOG.call(seconds) as call:
            try:
                response = self.session.post(self.url, data=data, stream=True,
                                             timeout=(min(connect, seconds), read),
                                             allow_redirects=False)
                with response:
                    body = self.answers.body(func, response)
            except requests.RequestException as exc:
                error = self.answers.transport_error(func, exc, min(connect, seconds), read)
                if call.cut and error.maybe_sent:
                    # The watchdog shut the socket down: whatever broke next, that is why.
                    error = self.answers.transient(
                        func, f"the answer did not complete within {round(seconds, 1):g} s"
                        f"{limit}", maybe_sent=True)
            except UpstreamError as exc:
                error = exc
            else:
                error = None
            if error is None:
                try:
                    doc = self.answers.doc(func, response, body)
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

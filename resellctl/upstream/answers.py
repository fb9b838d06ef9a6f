"""Reading an upstream's answers: a body within its cap, decoded into its ``doc``, or the
failure it means, sorted into the classes of resellctl.errors (docs/protocol.md, "Errors and
how the client classes them").

Every text taken from an answer is redacted of the transport's password and session id and
cleaned of what a terminal would obey, where it enters a message.
"""

import http.client
import json
import socket
import ssl

import requests
import urllib3.exceptions

from resellctl import bmdoc
from resellctl.errors import (AUTH, BALANCE, EXISTS, MALFORMED, PERMANENT, TRANSIENT,
                              UpstreamError)
from resellctl.printable import one_line

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


class Answers:
    """The answers of transport ``t`` (its host, URL, username, module, cap and secrets)."""

    def __init__(self, transport):
        self.t = transport

    def safe(self, text, limit=None):
        """Upstream text fit for a message: redacted before cleaning (which could split a
        password with blanks in it) and after (which could join one)."""
        return self.t.redact(_clean(self.t.redact(text), limit))

    def body(self, func, response):
        """The body of a 200 answer, decompressed, read up to the size cap; else UpstreamError.

        Another status is a temporary failure (a 5xx, a 408 or 429), or one that waiting will
        not mend: a redirect (never followed: the body holds the credentials) or any other 4xx
        says the module's URL is wrong.
        """
        status = response.status_code
        if status != 200:
            what = f"HTTP {status} {response.reason or ''}".rstrip()
            if response.is_redirect:
                where = self.safe(response.headers["Location"], 200)
                what += f", a redirect to {where!r}"
            if response.is_redirect or (400 <= status < 500 and status not in _RETRYABLE_4XX):
                raise UpstreamError(PERMANENT, self.safe(f"{func} on {self.t.host}: {what}"),
                                    type=f"http_{status}", hint=self._url_hint())
            raise self.transient(func, what, maybe_sent=True)
        length = response.headers.get("Content-Length", "")
        body = bytearray()
        if not (length.isdigit() and int(length) > self.t.max_answer):
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > self.t.max_answer:
                    break
            else:
                return body
        cap = round(self.t.max_answer / MiB, 3)
        raise self.malformed(func, f"the answer is larger than {cap:g} MiB "
                             "(RESELLCTL_MAX_ANSWER_MB)")

    def _url_hint(self):
        edit = f"resellctl modules edit {self.t.module} --url URL" if self.t.module else "--url"
        return f"Check the module's URL ({self.t.url}); fix it with: {edit}"

    def transport_error(self, func, exc, connect, read):
        if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                            requests.exceptions.InvalidURL)):
            return UpstreamError(PERMANENT, self.t.redact(
                f"{func} on {self.t.host}: invalid upstream URL ({type(exc).__name__})"),
                hint=self._url_hint())
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate or a handshake that fails now fails the next time too: the URL
            # (https on a port that speaks it), the host's certificate or REQUESTS_CA_BUNDLE.
            return UpstreamError(PERMANENT, self.safe(f"{func} on {self.t.host}: TLS failed: "
                                                      f"{_reason(exc)}"),
                                 type="tls", hint=self._url_hint() + " (or the CA bundle in "
                                 "REQUESTS_CA_BUNDLE)")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return self.transient(func, f"no connection within {connect:g} s", maybe_sent=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return self.transient(func, f"no answer within {read:g} s", maybe_sent=True)
        if isinstance(exc, requests.exceptions.ConnectionError) and any(
                isinstance(item, _NOT_SENT) for item in _chain(exc)):
            return self.transient(func, f"cannot connect: {_reason(exc)}", maybe_sent=False)
        # A dropped connection, a broken chunked body, anything else: it may have arrived.
        return self.transient(func, f"connection lost before the answer: {_reason(exc)}",
                              maybe_sent=True)

    def doc(self, func, response, body):
        """The ``doc`` of a body read whole, else UpstreamError (malformed answers: transient)."""
        most = self.t.max_answer // _BYTES_PER_VALUE
        # Counted before decoding, which takes up to a hundred bytes a value; every value but
        # the first follows a '[', ',' or ':', and takes a byte at least.
        if len(body) > most and 1 + sum(map(body.count, (b"[", b",", b":"))) > most:
            raise self.malformed(func, f"the answer holds more than {most:,} values "
                                 "(RESELLCTL_MAX_ANSWER_MB)")
        body_bytes = body
        try:
            body = json.loads(body)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            text = body[:200].decode("utf-8", "replace")
            raise self.malformed(func, f"the answer is not JSON ({kind}: "
                                 f"{self.safe(text, 60)!r})") from None
        except (RecursionError, MemoryError) as exc:
            why = "nests too deep" if isinstance(exc, RecursionError) else "is too large"
            raise self.malformed(func, f"the answer {why} to decode") from None
        if not isinstance(body, dict) or not isinstance(body.get("doc"), dict):
            raise self.malformed(func, "the answer is JSON without a doc")
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
            return self.malformed(func, f"the error answer is malformed ({exc})")
        etype, eobject, msg = (self.safe(s) for s in (etype, eobject, msg))
        # Params reach hints ("top up by at least {deficit} {currency}") and the books.
        params = {self.safe(k): self.safe(v) for k, v in params.items()}
        where = f"{func} on {self.t.host}"
        details = dict(type=etype, object=eobject, params=params)
        if etype in _AUTH_TYPES:
            fix = (f"resellctl modules edit {self.t.module} --username USER --password-file FILE"
                   if self.t.module else "--username and --password-file")
            return self._error(AUTH, f"{where}: login refused for user {self.t.username!r}", msg,
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
        return UpstreamError(kind, self.t.redact(f"{message}: {msg}" if msg else message),
                             hint=hint and self.t.redact(hint), **details)

    def transient(self, func, what, maybe_sent, type=None):
        fate = ("the request may have reached the upstream" if maybe_sent
                else "the request was not sent")
        message = f"{func} on {self.t.host}: {what} (a temporary failure; {fate})"
        return UpstreamError(TRANSIENT, self.safe(message), maybe_sent=maybe_sent, type=type)

    def malformed(self, func, what):
        """A transient failure of an answer that came whole but is not what the call answers
        (type ``malformed``): one service's form of that kind is that service's problem, where
        an upstream that cannot be reached is the module's."""
        return self.transient(func, what, maybe_sent=True, type=MALFORMED)


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

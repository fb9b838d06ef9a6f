"""Hostile HTTP servers on loopback: upstreams that drip, flood, nest or never finish.

``Hostile(behaviour)`` serves every request on a free loopback port. ``behaviour(request)``
writes the raw answer itself (status line, headers, body), as slowly or as badly as it likes;
``by_func`` picks a behaviour by the call's ``func``. The behaviours below cover what a broken
or malicious upstream may do: drip an answer, drip its headers, send a huge header, an endless
chunked body, a gzip bomb, deeply nested or enormous JSON. A behaviour stops when the client
hangs up or the server closes, so no test waits for one to finish. ``Hostile(behaviour,
tls=(cert, key))`` serves HTTPS; ``Backlogged()`` is a port where connecting never completes.
"""

import gzip
import json
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

from resellctl.bmdoc import scalar

OK = b'{"doc": {"ok": {}}}'
MiB = 2**20


class Request:
    """One request as a behaviour sees it: the form it carried, and the raw connection."""

    def __init__(self, handler, form, stopping):
        self.form = form
        self.func = form.get("func", "")
        self._handler = handler
        self._stopping = stopping

    def write(self, data):
        """Send ``data`` at once; False when the client has hung up or the server is closing."""
        if self._stopping.is_set():
            return False
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            return False
        return True

    def pause(self, seconds):
        """Wait ``seconds``; False when the server is closing meanwhile."""
        return not self._stopping.wait(seconds)


class Hostile:
    """A threaded HTTP server on 127.0.0.1 whose every answer is ``behaviour(request)``.

    Use it as a context manager; ``url`` is its API endpoint, ``funcs`` the funcs it was asked.
    ``tls``: the paths of a certificate and its key, to serve HTTPS with.
    """

    def __init__(self, behaviour, tls=None):
        self.behaviour = behaviour
        self.funcs = []
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                server.funcs.append(form.get("func", ""))
                self.close_connection = True
                server.behaviour(Request(self, form, server._stopping))

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client that hangs up mid-answer is what these servers are for

        self._server = Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/billmgr"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


class Backlogged:
    """A port on 127.0.0.1 that takes no more connections: its queue is full, so a client's
    connect waits until the client gives up. ``url`` is an API endpoint on it."""

    def __enter__(self):
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/billmgr"
        self._queued = []
        for _ in range(3):  # more than a backlog of 0 holds
            queued = socket.socket()
            queued.setblocking(False)
            queued.connect_ex(self._listener.getsockname())
            self._queued.append(queued)
        return self

    def __exit__(self, *exc):
        for queued in self._queued:
            queued.close()
        self._listener.close()


def head(headers=(), status="200 OK"):
    """A status line and headers, ``Connection: close`` among them, as bytes."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close",
             *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(body, headers=()):
    """A behaviour: ``body`` (bytes, or a doc to send as ``{"doc": doc}``) in one go."""
    if not isinstance(body, bytes):
        body = json.dumps({"doc": body}).encode()

    def behave(request):
        request.write(head([f"Content-Length: {len(body)}", *headers]) + body)
    return behave


def by_func(default, **funcs):
    """A behaviour by the call's func (``pricelist_export`` for ``pricelist.export``)."""
    def behave(request):
        funcs.get(request.func.replace(".", "_"), default)(request)
    return behave


def drip(body=OK, every=1.0, headers_too=False):
    """A behaviour: ``body`` one byte every ``every`` seconds; with ``headers_too``, the status
    line and headers as well, else those at once."""
    def behave(request):
        top = head([f"Content-Length: {len(body)}"])
        if not headers_too:
            request.write(top)
        for byte in (top if headers_too else b"") + body:
            if not (request.write(bytes([byte])) and request.pause(every)):
                return
    return behave


def chunked(chunks, headers=()):
    """A behaviour: the byte strings of the iterable ``chunks`` (maybe endless), as a chunked
    body."""
    def behave(request):
        if not request.write(head(["Transfer-Encoding: chunked", *headers])):
            return
        for chunk in chunks:
            if not request.write(b"%x\r\n%s\r\n" % (len(chunk), chunk)):
                return
        request.write(b"0\r\n\r\n")
    return behave


def endless(piece=b"[{}," * 16384):
    """A behaviour: a chunked body that never ends, ``piece`` after ``piece``."""
    def pieces():
        yield b'{"doc": {"elem": '
        while True:
            yield piece
    return chunked(pieces())


def gzip_bomb(size):
    """A behaviour: a small gzip body (Content-Encoding: gzip) that inflates to ``size`` bytes
    of a JSON page that never closes: gzip members of a MiB of blanks each, one after another."""
    blanks = gzip.compress(b" " * MiB)
    body = gzip.compress(b'{"doc": {"elem": [') + blanks * (size // MiB)
    return answer(body, ["Content-Encoding: gzip"])


def nested(depth, where="doc"):
    """A behaviour: JSON nested ``depth`` arrays deep, as the whole ``doc`` or as an event's
    ``param`` (``where="param"``)."""
    deep = "[" * depth + "]" * depth
    if where == "doc":
        return answer(f'{{"doc": {deep}}}'.encode())
    event = json.dumps({"id": scalar(101), "type": scalar("setparam"), "item": scalar(4201),
                        "param": "DEEP"})
    return answer(f'{{"doc": {{"elem": [{event}]}}}}'.replace('"DEEP"', deep).encode())


def promise(length):
    """A behaviour: headers announcing a body of ``length`` bytes, then nothing until the
    client hangs up."""
    def behave(request):
        if request.write(head([f"Content-Length: {length}"])):
            request.pause(600)
    return behave


def huge_header(size):
    """A behaviour: a header line ``size`` bytes long, then a good answer."""
    return answer(OK, [f"X-Padding: {'x' * size}"])


def many_values(count):
    """A behaviour: a valid event page of ``count`` empty objects: little JSON, many values.
    Made for each request, not kept."""
    def behave(request):
        answer(b'{"doc": {"elem": [' + b"{}," * (count - 1) + b"{}]}}")(request)
    return behave


def pricelists():
    """A behaviour: the tariff VDS-1 (upstream id 11) as ``pricelist.export`` answers it."""
    return answer({"pricelist": [{
        "id": scalar(11), "name": scalar("VDS-1"), "itemtype": scalar("vds"),
        "price": {"$currency": "EUR", "period": [{"$length": "1", "$cost": "5.00"}]},
        "addon": [{"id": scalar(101), "intname": scalar("disk"), "value": scalar(30),
                   "measure": scalar("GB")}]}]})


def balance():
    """A behaviour: the ``subaccount`` answer of an account holding 100.00 EUR."""
    return answer({"elem": [{"id": scalar(1), "balance": scalar("100.00"),
                             "currency": scalar("EUR")}]})

"""HTTP for the simulator: the API at ``/billmgr`` and the admin endpoint at ``/sim/<action>``.

Keep-alive HTTP/1.1 with a Content-Length on every answer and Nagle off, so a client pulling
a large event backlog page by page is not slowed down by the transport.
"""

import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

from resellctl.sim import admin, api, bm
from resellctl.sim.errors import ApiError

API_PATH = "/billmgr"
ADMIN_PREFIX = "/sim/"
MAX_BODY = 16 * 2**20
POLL_INTERVAL = 0.01  # seconds: how long close() may wait for the serving loop to notice

# Faults answered without processing: kind -> (status, content type, body).
CANNED = {
    "500": (500, "text/plain; charset=utf-8", b"Internal Server Error\n"),
    "html": (200, "text/html; charset=utf-8",
             b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>Bad Gateway</h1><p>nginx</p></body></html>\n"),
    "garbage": (200, "application/json", b"\x00\xff{\"doc\": {\"ok\"\xfe garbage"),
    "nodoc": (200, "application/json", b'{"result": {"$": "ok"}}'),
}

# A credential in a query string: the fields that carry a password or a session id.
_SECRET = re.compile(r"(?i)(?<!\w)(authinfo|password|auth)=([^&;\s]*)")


def redact(text):
    """``text`` (a path or a request line) with its passwords and session ids replaced by ***.

    The user of an ``authinfo`` stays, to tell whose request it was.
    """
    def hide(match):
        name, value = match.groups()
        user, colon, _ = unquote_plus(value).partition(":")
        if name.lower() == "authinfo" and colon:
            return f"{name}={quote(user, safe='@')}:***"
        return f"{name}=***"

    return _SECRET.sub(hide, text)


def _form(text):
    return dict(parse_qsl(text, keep_blank_values=True))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "resellctl-sim/1"
    timeout = 300  # an idle keep-alive connection gives its thread back

    # --- routing -----------------------------------------------------------------------------

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._record(_form(urlsplit(self.path).query))
            error = ApiError("access", "", "This API takes POST requests only")
            self._send(200, json.dumps({"doc": error.as_doc()}))
        elif path.startswith(ADMIN_PREFIX):
            self._send(405, json.dumps({"ok": False, "error": "POST only"}))
        else:
            self._send(404, "Not found\n", "text/plain; charset=utf-8")

    def do_POST(self):
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._api(body.decode("utf-8", "replace"))
        elif path.startswith(ADMIN_PREFIX):
            self._admin(path[len(ADMIN_PREFIX):], body)
        else:
            self._send(404, "Not found\n", "text/plain; charset=utf-8")

    # --- the API -----------------------------------------------------------------------------

    def _api(self, body):
        sim = self.server.sim
        form = _form(body)
        self._record(form)
        fault = sim.take_fault(form.get("func", ""))
        kind = fault.kind if fault else None
        if kind in CANNED:
            status, content_type, payload = CANNED[kind]
            self._send(status, payload, content_type)
            return
        if kind == "drop":
            self.close_connection = True
            return
        if kind == "delay":
            time.sleep(fault.seconds)
        try:
            text = api.answer(sim, form, None if sim.api == "events" else bm.call)
        except Exception:  # a bug here must still look like a server error, not a hang
            traceback.print_exc(file=sys.stderr)
            self._send(500, "Internal Server Error\n", "text/plain; charset=utf-8")
            return
        if kind == "drop_after_commit":
            self.close_connection = True
            return
        self._send(200, text)

    def _record(self, form):
        # Never a password or a session id: only whether the request carried one.
        fields = dict(form)
        user, colon, password = fields.pop("authinfo", "").partition(":")
        password = fields.pop("password", "") or password
        session = fields.pop("auth", "")
        self.server.sim.record_request({
            "method": self.command, "path": redact(self.path), "func": form.get("func", ""),
            "params": fields, "authinfo_user": user if colon else "",
            "carried_password": bool(password), "session": bool(session),
        })

    # --- the admin endpoint ------------------------------------------------------------------

    def _admin(self, action, body):
        try:
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                raise admin.AdminError("the body is not JSON") from None
            answer = admin.run(self.server.sim, action, payload)
        except admin.AdminError as error:
            self._send(400, json.dumps({"ok": False, "error": str(error)}))
        else:
            self._send(200, json.dumps(answer))

    # --- transport ---------------------------------------------------------------------------

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(411, "A Content-Length is required\n", "text/plain; charset=utf-8")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(413, "Bad or too large Content-Length\n", "text/plain; charset=utf-8")
            return None
        return self.rfile.read(length)

    def _send(self, status, body, content_type="application/json"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        # Only the request line is sure to be there: a request that is not HTTP (a TLS
        # handshake, garbage) is answered 400 before it has a command or a path.
        self.log_message('"%s" %s', self.requestline, code)

    def log_message(self, format, *args):
        # Lines quote the request, and a GET's query may carry a password.
        if self.server.verbose:
            args = [redact(arg) if isinstance(arg, str) else arg for arg in args]
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # clients' idle keep-alive connections must not hold up close()
    request_queue_size = 128

    def __init__(self, address, sim, verbose):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sim = sim
        self.verbose = verbose
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        # A client that gave up (its read timeout, a dropped connection) is no server error;
        # the default traceback would land on whatever stderr the process has at the time.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def server_bind(self):
        # HTTPServer.server_bind asks DNS for the host's full name; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class SimServer:
    """A running simulator: ``url`` is the API endpoint, ``base`` the server's root."""

    def __init__(self, sim, host="127.0.0.1", port=0, verbose=False):
        self.sim = sim
        self._httpd = _HTTPServer((host, port), sim, verbose)
        self.host, self.port = host, self._httpd.server_address[1]
        self.base = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.url = self.base + API_PATH
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name="resellctl-sim", daemon=True)
        self._thread.start()
        self._closed = False

    def close(self):
        """Stop serving and release the port."""
        if not self._closed:
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def serve(sim, host="127.0.0.1", port=0, verbose=False):
    """Serve ``sim`` over HTTP from a daemon thread; the running SimServer."""
    return SimServer(sim, host, port, verbose)

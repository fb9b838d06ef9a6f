"""Login sessions of the bm dialects: ``func=auth`` opens one, later calls send ``auth=<id>``.

A session ends after an idle time (a real BILLmanager's is an hour) or when the upstream ends
them all; either way the next call with it answers the error ``auth``.
"""

import secrets
import time

DEFAULT_IDLE = 3600.0  # seconds


class Sessions:
    """Session ids and whose they are; ``clock`` may be replaced to age sessions in tests."""

    def __init__(self, idle=DEFAULT_IDLE, clock=time.monotonic):
        idle = float(idle)
        if not idle > 0:
            raise ValueError("a session's idle time must be more than 0 seconds")
        self.idle = idle
        self.clock = clock
        self._sessions = {}  # session id -> [username, time of the last use]

    def __len__(self):
        return len(self._sessions)

    def open(self, username):
        """A new session for ``username``; its id."""
        now = self.clock()
        # Sessions nobody uses again would pile up: forget the ended ones at each login.
        for sid in [sid for sid, (_, used) in self._sessions.items() if now - used > self.idle]:
            del self._sessions[sid]
        sid = secrets.token_hex(16)
        self._sessions[sid] = [username, now]
        return sid

    def user(self, sid):
        """The username of the live session ``sid``, or None; using it restarts its idle time."""
        session = self._sessions.get(sid)
        now = self.clock()
        if session is None or now - session[1] > self.idle:
            self._sessions.pop(sid, None)
            return None
        session[1] = now
        return session[0]

    def expire_all(self):
        """End every session now."""
        self._sessions.clear()

"""Exit statuses and the typed errors that carry them.

Errors are raised where they are known; the command line turns them into one message on stderr
and the exit status they name, in one place (``resellctl.cli.main``).
"""

from enum import IntEnum


class ExitStatus(IntEnum):
    """The one source of truth for resellctl's exit codes."""

    SUCCESS = 0
    ERROR = 1  # an operation or the upstream failed
    USAGE = 2  # bad usage or bad input
    TEMPFAIL = 75  # the sync lock is held, or the upstream stayed unreachable (EX_TEMPFAIL)
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports a command it interrupted


class ResellError(Exception):
    """An error to show the user as one line (plus an optional hint), never as a traceback."""

    exit_status = ExitStatus.ERROR

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(ResellError):
    """Bad input: an unknown name or id, a value out of range, a refused request."""

    exit_status = ExitStatus.USAGE


class StoreError(ResellError):
    """The store cannot be created, opened or is not a resellctl store."""

    exit_status = ExitStatus.USAGE


class Interrupted(ResellError):
    """Ctrl-C: the command stopped; a hint says what it left to do, if anything."""

    exit_status = ExitStatus.INTERRUPTED

    def __init__(self, hint=None):
        super().__init__("interrupted", hint)


class LockHeld(ResellError):
    """Another process holds a lock: the sync lock, or the store past its busy timeout."""

    exit_status = ExitStatus.TEMPFAIL


# The classes of upstream errors, as docs/protocol.md's error table sorts them.
TRANSIENT = "transient"  # network, timeout, non-200, not JSON, no doc: retry
AUTH = "auth"  # bad credentials: fix the module
BALANCE = "balance"  # not_enough_money: wait for funds
EXISTS = "exists"  # the object exists already (an order's remoteid): adopt it
PERMANENT = "permanent"  # everything else: do not retry
# The type of a transient failure whose answer came whole but malformed (not JSON, too large,
# of the wrong shape), beside those that never came: one service's form of that kind is that
# service's problem, where an upstream that cannot be reached is the module's.
MALFORMED = "malformed"


class UpstreamError(ResellError):
    """An answer (or the lack of one) from the selling BILLmanager.

    ``kind`` is one of TRANSIENT, AUTH, BALANCE, EXISTS, PERMANENT. ``type`` and ``object`` are
    the upstream's ``$type`` and ``$object``; ``params`` its ``param`` list as a dict.
    ``maybe_sent`` is true when the request may have reached the upstream (a timeout after
    sending, a dropped connection, a 5xx), so re-sending it could apply it twice.
    """

    def __init__(self, kind, message, *, type=None, object=None, params=None, maybe_sent=False,
                 hint=None):
        super().__init__(message, hint)
        self.kind = kind
        self.type = type or kind
        self.object = object or ""
        self.params = dict(params or {})
        self.maybe_sent = maybe_sent

    @property
    def exit_status(self):
        return ExitStatus.TEMPFAIL if self.kind == TRANSIENT else ExitStatus.ERROR

    def __repr__(self):
        return f"UpstreamError({self.kind!r}, {self.message!r}, type={self.type!r})"

"""Retries of upstream calls, the one layer that makes them, and the settings read from the
environment.

Transient failures only (network, timeout, 5xx, garbage), with exponential backoff and jitter,
bounded in attempts and in time, and never past the caller's deadline. The transport retries a
call (transport.Transport.call); the engine retries the sending of a change, one read before
each try (operations.retried), with its inner calls sent once.
"""

import inspect
import os
import time

import tenacity

from resellctl.errors import TRANSIENT, InputError, UpstreamError

# tenacity 9.2 renamed wait_exponential_jitter's ``initial`` to ``multiplier``.
_FIRST_WAIT = ("multiplier" if "multiplier" in
               inspect.signature(tenacity.wait_exponential_jitter).parameters else "initial")


def env_number(name, default, minimum=0.0, integer=False):
    """The number the environment variable ``name`` holds (``default`` when it is unset or
    blank); InputError for one that is not a number of at least ``minimum``."""
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


def is_transient(exc):
    return isinstance(exc, UpstreamError) and exc.kind == TRANSIENT


def retrying(retry_if=None, deadline=None, notify=None):
    """A ``tenacity.Retrying`` for upstream calls, configured from the environment.

    Attempts: ``RESELLCTL_RETRY_ATTEMPTS`` (default 4), bounded in total by
    ``RESELLCTL_RETRY_MAX_SECONDS`` (default 30); waits grow exponentially from
    ``RESELLCTL_RETRY_WAIT`` (default 0.5 s, at most 8 s) plus a jitter of up to that initial wait,
    so ``RESELLCTL_RETRY_WAIT=0`` never sleeps. ``retry_if`` decides on the exception (default:
    an UpstreamError of kind TRANSIENT). ``deadline`` (a ``time.monotonic()`` value): no
    attempt starts after it, whatever the settings allow. ``notify(message)`` is told of each
    retry before its wait. After the last attempt the last exception itself is raised, never
    tenacity's RetryError.
    """
    attempts = env_number("RESELLCTL_RETRY_ATTEMPTS", 4, minimum=1, integer=True)
    max_seconds = env_number("RESELLCTL_RETRY_MAX_SECONDS", 30.0)
    initial = env_number("RESELLCTL_RETRY_WAIT", 0.5)
    return tenacity.Retrying(
        stop=tenacity.stop_any(
            tenacity.stop_after_attempt(attempts), tenacity.stop_after_delay(max_seconds),
            lambda state: deadline is not None and time.monotonic() >= deadline),
        wait=tenacity.wait_exponential_jitter(max=8, jitter=initial, **{_FIRST_WAIT: initial}),
        retry=tenacity.retry_if_exception(retry_if or is_transient),
        before_sleep=(lambda state: notify(_retry_note(state, attempts))) if notify else None,
        reraise=True,
    )


def _retry_note(state, attempts):
    """``HTTP 500; retrying in 2 s, attempt 2 of 4``: what a person at a terminal is told."""
    error = state.outcome.exception()
    why = error.message.split(": ", 1)[-1].split(" (a temporary failure")[0]
    return (f"{why}; retrying in {state.next_action.sleep:.0f} s, attempt "
            f"{state.attempt_number + 1} of {attempts}")


def retried(fn, deadline=None, notify=None):
    """``fn()`` with its transient failures retried (``retrying``), the last error's message
    saying how many attempts were made when there were several."""
    attempts = 0
    try:
        for attempt in retrying(deadline=deadline, notify=notify):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                return fn()
    except UpstreamError as error:
        if attempts > 1:
            error.message += f"; gave up after {attempts} attempts"
            error.args = (error.message,)
        raise

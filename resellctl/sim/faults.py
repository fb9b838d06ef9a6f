"""Injected transport faults: what the next matching API requests get instead of an answer."""

from dataclasses import dataclass
from fnmatch import fnmatchcase

# kind -> what the request gets
KINDS = {
    "500": "HTTP 500 with a text body; nothing processed",
    "html": "HTTP 200 with an HTML page; nothing processed",
    "garbage": "HTTP 200 with bytes that are not JSON; nothing processed",
    "nodoc": "HTTP 200 with JSON that lacks 'doc'; nothing processed",
    "delay": "wait SECONDS, then process and answer normally",
    "drop": "close the connection; nothing processed, no answer",
    "drop_after_commit": "process fully, then close the connection without an answer",
}


@dataclass
class Fault:
    kind: str
    func: str
    count: int
    seconds: float | None = None


class FaultQueue:
    """Faults in the order they were set; each matching request uses up one of a fault's count."""

    def __init__(self):
        self._faults = []

    def add(self, kind, func="*", count=1, seconds=None):
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of: {', '.join(KINDS)}")
        count = int(count)
        if count < 1:
            raise ValueError("a fault's count must be at least 1")
        if kind == "delay":
            if seconds is None or float(seconds) < 0:
                raise ValueError("a delay fault needs seconds >= 0")
            seconds = float(seconds)
        self._faults.append(Fault(kind, func or "*", count, seconds))

    def clear(self):
        self._faults.clear()

    def take(self, func):
        """The fault this request gets, or None; uses it up."""
        for fault in self._faults:
            if fnmatchcase(func, fault.func):
                fault.count -= 1
                if not fault.count:
                    self._faults.remove(fault)
                return fault
        return None

"""One account's item event log: a cursor-addressed list of events kept as wire-ready JSON.

Each event is serialised once, when it happens, so a page of ``item.event.list`` is a slice
and a join: pulling a backlog of 100,000 events costs no per-request encoding.
"""

import json
from bisect import bisect_right
from datetime import datetime

from resellctl.bmdoc import named, scalar

FIRST_EVENT_ID = 101


def now_text():
    """The current time as events carry it."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


class EventLog:
    """Events with strictly increasing ids; ``ack`` forgets a prefix, ids are never reused."""

    def __init__(self, first_id=FIRST_EVENT_ID):
        self.next_id = first_id
        self._ids = []
        self._lines = []

    def __len__(self):
        return len(self._ids)

    def append(self, type, item, date=None, **fields):
        """Record an event about ``item``; ``fields`` are scalars, or dicts for param/addon."""
        event = {"id": scalar(self.next_id), "type": scalar(type),
                 "date": scalar(date or now_text()), "item": scalar(item.id),
                 "remoteid": scalar(item.remoteid), "itemtype": scalar(item.itemtype)}
        for key, value in fields.items():
            if value is not None:
                event[key] = named(value) if isinstance(value, dict) else scalar(value)
        self._ids.append(self.next_id)
        self._lines.append(json.dumps(event))
        self.next_id += 1
        return event

    def append_raw(self, record):
        """Put ``record`` in the log exactly as given (even without an id, or malformed).

        It takes the next id's place in the feed; the id it carries, if any, is its own.
        """
        self._ids.append(self.next_id)
        self._lines.append(json.dumps(record))
        self.next_id += 1
        return self._ids[-1]

    def page(self, after, limit):
        """The JSON texts of up to ``limit`` events with id > ``after``, and whether more wait."""
        start = bisect_right(self._ids, after)
        return self._lines[start:start + limit], start + limit < len(self._lines)

    def ack(self, upto):
        """Forget the events with id <= ``upto``."""
        end = bisect_right(self._ids, upto)
        del self._ids[:end]
        del self._lines[:end]

    def decoded(self):
        """Every kept event as a dict, as sent on the wire."""
        return [json.loads(line) for line in self._lines]

    @property
    def last_id(self):
        """The id of the newest event ever recorded (0 before the first)."""
        return self.next_id - 1 if self.next_id > FIRST_EVENT_ID else 0

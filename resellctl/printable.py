"""Text from outside, made fit to show: one line, nothing a terminal would obey or hide.

Upstream text (an error message, a tariff name, a currency, an event's reason) may hold line
breaks, which would print as lines of their own in our output and in cron mail, terminal control
sequences, and bidi or other invisible format characters (U+202E shows the rest of a line
reversed). Every character that Python does not count as printable is spelled out as its repr
spells it: ``\\n``, ``\\x1b``, ``\\u202e``. The engine uses this where upstream text enters a
message of ours, and the output layer for every value it shows, so it imports nothing.
"""

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def one_line(value):
    """``str(value)`` with every character that is not printable spelled out: one line."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _spelled(ch) for ch in text)


def _spelled(ch):
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

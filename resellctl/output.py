"""Rendering rows for people and for programs: a table on a terminal, TSV in a pipe, JSON.

Lists stream: JSON arrays and TSV lines are written row by row, so the first row is out before
the last is read. Text that came from the upstream may hold line breaks, terminal control,
bidi or other invisible characters, or rich markup; all are neutralised here, in the one place
every value passes through.

Programs get the books' values: times in UTC as ISO 8601 (``2026-12-01T05:00:27Z``), service
statuses as codes. A person at a terminal gets local times with their zone
(``2026-12-01 08:00:27 MSK``) and what a command asks for in ``labels`` (``active`` for ``2``),
in a table that fits the terminal: ids, statuses and names are never cut; free text is cut
short, and a column that finds no room at all is left out, the table's last line naming it.
"""

import calendar
import datetime
import itertools
import json
import sys
import time

import click

from resellctl.errors import InputError
from resellctl.printable import one_line
from resellctl.store import STAMP, TIME_COLUMNS

TIMES = frozenset(column for columns in TIME_COLUMNS.values() for column in columns)
# Ids, statuses and names: shown whole in a table, whatever the terminal's width.
KEYS = frozenset({"id", "item", "task", "runningoperation", "event_id", "upstream_id",
                  "upstream_item", "name", "client", "pricelist", "processingmodule", "status",
                  "outcome", "operation", "type"})
# Free text: cut short with an ellipsis in a table. It, then any other column but the keys,
# then the times, are left out when the terminal has no room for them.
FREE_TEXT = frozenset({"reason", "desc", "url", "username", "message", "note", "value",
                       "prices", "addons"})
FREE_MIN = 15  # the narrowest a free-text column is shown
GAP = 2  # between two columns
# Table headings broken into words, so that a narrow column may wrap its heading.
HEADINGS = {"processingmodule": "processing module", "runningoperation": "running operation",
            "trycount": "try count", "itemtype": "item type"}


def clean(value):
    """A value safe for a terminal, on one line: control characters, line breaks, bidi and
    other invisible characters shown as ``\\x1b``, ``\\n``, ``\\u202e``, never emitted."""
    return "" if value is None else one_line(value)


def to_json(obj, indent=None):
    """JSON text with every character that is not printable escaped (``\\u202e``).

    json.dumps escapes C0 controls itself (so a raw line break is the indent's), but with
    ensure_ascii=False lets DEL, C1, bidi and other invisible characters through.
    """
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    if text.isprintable():
        return text
    return "\n".join(map(_json_escaped, text.split("\n")))


def _json_escaped(line):
    if line.isprintable():
        return line
    # json.dumps of one character escapes it as JSON does, beyond U+FFFF as a surrogate pair.
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in line)


def say(message, err=True):
    """A message for the user (stderr by default), each of its lines cleaned.

    Its line breaks are ours: text from the upstream in it was made one line where it entered
    (``printable.one_line``), so that it can never print a line of its own.
    """
    click.echo("\n".join(clean(line) for line in str(message).split("\n")), err=err)


def options(fn):
    """The output options every listing command takes: --json and -q."""
    fn = click.option("-q", "--quiet", is_flag=True,
                      help="Print only ids, one per line (for pipelines).")(fn)
    fn = click.option("--json", "as_json", is_flag=True,
                      help="Print a JSON array of objects.")(fn)
    return fn


def check_format(as_json, quiet):
    """InputError for --json with -q; commands that change things call it before they do."""
    if as_json and quiet:
        raise InputError("give --json or -q, not both")


def local_time(value):
    """A time as the store writes it (UTC) in the local zone, named: ``2026-12-01 08:00:27
    MSK``; any other value as it is."""
    try:
        moment = datetime.datetime.strptime(value, STAMP)
    except (TypeError, ValueError):
        return value
    # The zone as the C library has it: a POSIX TZ may lie 24 hours or more from UTC
    # ("XYZ+24"), which datetime's own zones cannot hold.
    try:
        local = time.localtime(calendar.timegm(moment.timetuple()))
        shifted = moment + datetime.timedelta(seconds=local.tm_gmtoff)
    except (OverflowError, OSError, ValueError):
        return value
    return f"{shifted:%Y-%m-%d %H:%M:%S} {local.tm_zone}"


def _for_people(labels):
    """How a terminal shows the value of a column: its label (``labels``), or local time."""
    def shown(column, value):
        if value is not None and column in labels:
            return labels[column](value)
        return local_time(value) if column in TIMES else value
    return shown


def emit_rows(app, rows, columns, as_json=False, quiet=False, key="id", labels=None,
              wrap=False):
    """Print ``rows`` (an iterable of dicts): ids, JSON, a rich table or TSV lines.

    ``labels``: ``{column: function}`` giving a value as a terminal shows it (``item_label``).
    ``wrap``: a table wraps its free text rather than cutting it short (a few rows to read in
    full, such as a service's history), still never narrower than FREE_MIN.
    """
    check_format(as_json, quiet)
    write = sys.stdout.write
    # Views check their arguments when first read: read the first row before printing
    # anything, so that a bad argument leaves no header or "[" on stdout.
    rows = iter(rows)
    head = next(rows, None)
    rows = itertools.chain([head] if head is not None else [], rows)
    if quiet:
        for row in rows:
            write(f"{row[key]}\n")
    elif as_json:
        first = True
        write("[")
        for row in rows:
            write(("\n" if first else ",\n") + to_json(row))
            first = False
        write("\n]\n" if not first else "]\n")
    elif app.stdout_isatty:
        _table(rows, columns, _for_people(labels or {}), wrap)
    else:
        write("\t".join(columns) + "\n")
        for row in rows:
            write("\t".join(clean(_cell(row.get(c))) for c in columns) + "\n")
    # Messages that follow on stderr must not overtake the rows where both share a pipe (2>&1).
    sys.stdout.flush()


def emit_one(app, obj, as_json=False, sections=(), labels=None):
    """Print one object: JSON, or ``field<TAB>value`` lines plus named sub-lists.
    ``labels`` as for emit_rows."""
    if as_json:
        click.echo(to_json(obj, indent=2))
        return
    skip = {name for name, _ in sections}
    width = max((len(k) for k in obj if k not in skip), default=0)
    people = app.stdout_isatty

    def shown(field, value):
        return clean(_cell(_for_people(labels or {})(field, value) if people else value))

    for field, value in obj.items():
        if field in skip:
            continue
        click.echo(f"{field:<{width}}  {shown(field, value)}" if people
                   else f"{field}\t{shown(field, value)}")
    for name, columns in sections:
        rows = obj.get(name) or []
        click.echo(f"\n{name}:")
        if isinstance(rows, dict):
            rows = [{"name": k, "value": v} for k, v in rows.items()]
        if not rows:
            click.echo("  (none)")
            continue
        for row in rows:
            click.echo("  " + "  ".join(shown(c, row.get(c)) for c in columns))


class Progress:
    """Progress on stderr, for a terminal only (``enabled``): ``progress(name, done)`` shows
    ``name: done unit`` (``done of total unit``, with a bar, given a ``total``), each name on
    a line of its own, once some name has reached ``show_from``; ``close()`` takes it away.
    rich is imported only once there is something to show."""

    def __init__(self, enabled, unit, total=None, show_from=0):
        self.enabled, self.unit, self.total, self.show_from = enabled, unit, total, show_from
        self.bar, self.tasks = None, {}

    def __call__(self, name, done):
        if not self.enabled or (self.bar is None and done < self.show_from):
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as Bar, SpinnerColumn, TextColumn

            # The App decided this is a terminal; rich need not guess again.
            self.bar = Bar(SpinnerColumn(), TextColumn("{task.description}"),
                           *([BarColumn()] if self.total else []),
                           console=Console(stderr=True, force_terminal=True), transient=True)
            self.bar.start()
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task("", total=self.total)
        count = f"{done} of {self.total}" if self.total else f"{done}"
        self.bar.update(self.tasks[name], completed=done,
                        description=f"{clean(name)}: {count} {self.unit}")
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _cell(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in _flat(value))
    if isinstance(value, list):
        return ", ".join(str(_cell(v)) for v in value)
    return "" if value is None else value


def _flat(mapping, prefix=""):
    """``{"params": {"ip": "..."}}`` as ``[("params.ip", "...")]``: one level a person reads."""
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _cell(value)


def _table(rows, columns, shown, wrap):
    from rich import box
    from rich.console import Console
    from rich.table import Column, Table
    from rich.text import Text

    cells = [[clean(_cell(shown(c, row.get(c)))) for c in columns] for row in rows]
    console = Console(highlight=False)
    widths = layout(columns, cells, console.width)
    needed = sum(widths.values()) + GAP * (len(widths) - 1)
    if needed > console.width:
        # Not even the ids and names fit: lines the terminal wraps rather than an id cut short.
        console = Console(highlight=False, width=needed)
    left_out = [c for c in columns if c not in widths]
    # A heading may wrap, and a time at its spaces; any other value is on one line, whole, or
    # if it is free text cut short (or wrapped).
    table = Table(*(Column(Text(_heading(c), no_wrap=False, overflow="fold"), width=w,
                           no_wrap=c not in TIMES and not (wrap and c in FREE_TEXT),
                           overflow="ellipsis" if c in FREE_TEXT and not wrap else "fold")
                    for c, w in widths.items()),
                  header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True, caption_justify="left",
                  caption=f"left out at this width: {', '.join(left_out)}" if left_out else None)
    indexes = [columns.index(c) for c in widths]
    for row in cells:
        # Text(), not str: upstream data must never be read as rich markup.
        table.add_row(*(Text(row[i]) for i in indexes))
    console.print(table)


def _heading(column):
    return HEADINGS.get(column, column.replace("_", " "))


def layout(columns, cells, width):
    """``{column: width}`` of a table of ``cells`` (rows of strings) on a terminal ``width``
    wide, in the order of ``columns``; the columns that find no room are left out.

    The least width of a column is its longest heading word and: an id, a status or a name
    (KEYS) whole; a time on two lines (date, then time and zone); free text FREE_MIN; any
    other value whole. Free text, then the other columns but the keys, then dates and times,
    are left out (the rightmost first) until the rest fits. What room is left gives each time
    its one line, then each heading, then free text what there is.
    """
    from rich.cells import cell_len

    def longest_word(text):
        return max(map(cell_len, text.split()), default=0)

    least, full = {}, {}
    for index, column in enumerate(columns):
        values = [row[index] for row in cells]
        whole = max(map(cell_len, values), default=0)
        heading = longest_word(_heading(column))
        if column in TIMES:
            least[column] = max((max(cell_len(part) for part in value.partition(" ")[::2])
                                 for value in values), default=0)
        elif column in FREE_TEXT:
            least[column] = min(whole, FREE_MIN)
        else:
            least[column] = whole
        least[column] = max(least[column], heading)
        full[column] = max(whole, cell_len(_heading(column)))
    shown = list(columns)
    # Dates and times are left out last, after free text and the other columns but the keys;
    # the rightmost of each kind first.
    dated = TIMES | {"expiredate"}
    droppable = sorted((c for c in columns if c not in KEYS), key=lambda c: (
        c not in FREE_TEXT, c in dated, -columns.index(c)))

    def room_left():
        return width - sum(least[c] for c in shown) - GAP * (len(shown) - 1)

    while room_left() < 0 and droppable:
        shown.remove(droppable.pop(0))
    widths = {c: least[c] for c in shown}
    spare = room_left()
    # Times on one line first (each row gains), then headings, then free text as far as it goes.
    for column in sorted(shown, key=lambda c: (c not in TIMES, c in FREE_TEXT)):
        grow = full[column] - widths[column]
        if column in FREE_TEXT:
            grow = min(grow, spare)
        if 0 < grow <= spare:
            widths[column] += grow
            spare -= grow
    return widths

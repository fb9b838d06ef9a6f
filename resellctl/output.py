"""Rendering rows for people and for programs: a table on a terminal, TSV in a pipe, JSON.

Lists stream: JSON arrays and TSV lines are written row by row, so the first row is out before
the last is read. Text that came from the upstream may hold line breaks, terminal control,
bidi or other invisible characters, or rich markup; all are neutralised here, in the one place
every value passes through.
"""

import itertools
import json
import sys

import click

from resellctl.errors import InputError
from resellctl.printable import one_line


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


def emit_rows(app, rows, columns, as_json=False, quiet=False, key="id"):
    """Print ``rows`` (an iterable of dicts): ids, JSON, a rich table or TSV lines."""
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
        _table(rows, columns)
    else:
        write("\t".join(columns) + "\n")
        for row in rows:
            write("\t".join(clean(_cell(row.get(c))) for c in columns) + "\n")
    # Messages that follow on stderr must not overtake the rows where both share a pipe (2>&1).
    sys.stdout.flush()


def emit_one(app, obj, as_json=False, sections=()):
    """Print one object: JSON, or ``field<TAB>value`` lines plus named sub-lists."""
    if as_json:
        click.echo(to_json(obj, indent=2))
        return
    skip = {name for name, _ in sections}
    width = max((len(k) for k in obj if k not in skip), default=0)
    for field, value in obj.items():
        if field in skip:
            continue
        value = _cell(value)
        click.echo(f"{field:<{width}}  {clean(value)}" if app.stdout_isatty
                   else f"{field}\t{clean(value)}")
    for name, columns in sections:
        rows = obj.get(name) or []
        click.echo(f"\n{name}:")
        if isinstance(rows, dict):
            rows = [{"name": k, "value": v} for k, v in rows.items()]
        if not rows:
            click.echo("  (none)")
            continue
        for row in rows:
            click.echo("  " + "  ".join(clean(_cell(row.get(c))) for c in columns))


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


def _table(rows, columns):
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, header_style="bold")
    for row in rows:
        # Text(), not str: upstream data must never be read as rich markup.
        table.add_row(*(Text(clean(_cell(row.get(c)))) for c in columns))
    Console(highlight=False).print(table)

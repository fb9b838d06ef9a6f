"""The system-wide configuration file, and where the store is.

``/etc/resellctl.conf`` (or the file RESELLCTL_CONFIG names) is TOML, e.g.::

    db = "/var/lib/resellctl/resellctl.db"

so that cron and every shell use the same store without each setting RESELLCTL_DB, and its
``[status]`` table holds the thresholds of ``resellctl status`` (STATUS below). It is read
only when a command needs the store and neither --db nor RESELLCTL_DB names it, or the
thresholds (never for ``--version`` or ``--help``). A missing
``/etc/resellctl.conf`` is no error; a file that cannot be read, is not TOML, or holds an
unknown key or a value of the wrong type is, naming the file and the line. This module knows
nothing of click.
"""

import collections
import os
import re

from resellctl.errors import InputError

DEFAULT_FILE = "/etc/resellctl.conf"

Key = collections.namedtuple("Key", "type default check", defaults=(None,))


def _absolute(value):
    return None if os.path.isabs(value) else "must be an absolute path"


def _threshold(value):
    # nan and inf fail it too; at most some eleven years (in hours) keeps the date arithmetic
    # of `resellctl status` in range.
    return None if 0 < value <= 100_000 else "must be more than 0 and at most 100000"


# The thresholds of `resellctl status`, past which it warns or is critical. checkevent runs
# every five minutes: a module not synced for two runs is a warning, for three critical.
STATUS = {
    "sync_warning_minutes": 10,  # since a module's last successful sync (or since it was added)
    "sync_critical_minutes": 15,
    "new_warning_minutes": 15,  # an operation not sent (checkevent re-runs it after 5)
    "waiting_warning_hours": 24,  # an operation accepted upstream whose change has not come
    "task_warning_hours": 24,  # a task for staff (a manual module) still open
    "problem_events_hours": 24,  # an event that could not be applied, received since
}

# Every key the file may hold, with its type, its default and an optional check (a function
# that says what is wrong with a value, or None). A key of a TOML table is "table.key".
KEYS = {
    "db": Key(str, None, _absolute),
    **{f"status.{name}": Key(float, default, _threshold) for name, default in STATUS.items()},
}

_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def default_db_path(environ=os.environ):
    """``$XDG_DATA_HOME/resellctl/resellctl.db``, i.e. ``~/.local/share/resellctl/...``."""
    base = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        # A relative one is to be ignored (the XDG base directory rules): taken from the
        # current directory, each directory a command ran in would have a store of its own.
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "resellctl", "resellctl.db")


def store_path(flag=None, environ=os.environ):
    """Where the store is and what said so: ``(path, source)``, ``source`` a phrase such as
    "from the RESELLCTL_DB variable". The --db flag wins, then RESELLCTL_DB, then the
    configuration file, then the default."""
    if flag is not None:
        return flag, "from the --db flag"
    if "RESELLCTL_DB" in environ:
        value = environ["RESELLCTL_DB"]
        if not value:
            raise InputError("RESELLCTL_DB is set but empty",
                             "Set it to the store's path, or unset it.")
        return value, "from the RESELLCTL_DB variable"
    path, settings = load(environ)
    if settings["db"] is not None:
        return settings["db"], f"from db in {path}"
    return default_db_path(environ), "the default location"


def load(environ=os.environ):
    """The configuration: ``(path of the file, {key: value})``, every key of KEYS present
    (its default when the file does not set it)."""
    named = environ.get("RESELLCTL_CONFIG")
    if named == "":
        raise InputError("RESELLCTL_CONFIG is set but empty",
                         "Set it to a configuration file, or unset it.")
    path = named or DEFAULT_FILE
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if named:
            raise InputError(f"the configuration file {path} (named by RESELLCTL_CONFIG) does "
                             "not exist") from None
        data = b""
    except OSError as e:
        raise InputError(f"cannot read the configuration file {path}: {e.strerror}") from None
    return path, parse(data, path)


def parse(data, path):
    """The settings in TOML ``data`` (bytes) read from ``path``, checked against KEYS."""
    import tomllib

    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path} is not valid TOML: not UTF-8 text (at line {line})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path} is not valid TOML: {e}") from None
    settings = {name: key.default for name, key in KEYS.items()}
    for name, value in _flatten(document):
        key = KEYS.get(name)
        where = f"{path}, line {_line_of(text, name)}"
        if key is None:
            raise InputError(f"{where}: unknown key {name!r}",
                             f"Known keys: {', '.join(sorted(KEYS))}.")
        # bool is an int to Python, and an int will do where a float is asked for.
        fits = isinstance(value, key.type) and not (
            isinstance(value, bool) and key.type is not bool)
        fits = fits or (key.type is float and type(value) is int)
        if not fits:
            raise InputError(f"{where}: {name} must be {_TYPE_NAMES[key.type]}, not {value!r}")
        problem = key.check(value) if key.check else None
        if problem:
            raise InputError(f"{where}: {name} {problem}, not {value!r}")
        settings[name] = value
    warning, critical = (settings[f"status.sync_{level}_minutes"]
                         for level in ("warning", "critical"))
    if warning > critical:
        # A module not synced would be critical before it was ever a warning.
        named = next((f"status.sync_{level}_minutes" for level in ("warning", "critical")
                      if f"sync_{level}_minutes" in text), "status.sync_warning_minutes")
        raise InputError(f"{path}, line {_line_of(text, named)}: "
                         f"status.sync_warning_minutes ({warning:g}) is more than "
                         f"status.sync_critical_minutes ({critical:g})",
                         "The warning comes first: make it the smaller of the two.")
    return settings


def _flatten(document, prefix=""):
    """``(dotted name, value)`` for every leaf of ``document``; a table no known key lives in
    is a leaf itself, to be refused by its name."""
    for name, value in document.items():
        dotted = prefix + name
        if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in KEYS):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _line_of(text, dotted):
    """The line that sets ``dotted`` (its last part: ``name =`` or ``[table.name]``), as TOML
    parsers give no positions for valid documents; 1 if none is found."""
    name = re.escape(dotted.rpartition(".")[2])
    pattern = re.compile(rf"^[ \t]*(?:[\w.\"'-]*\.)?[\"']?{name}[\"']?[ \t]*="
                         rf"|^[ \t]*\[+[^\]\n]*\b{name}\b", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1

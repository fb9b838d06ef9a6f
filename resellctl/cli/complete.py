"""Shell completion of what the store holds: module and tariff names, service numbers.

Each function is a click ``shell_complete`` callback, run in the user's shell at each Tab (the
README says how to turn completion on). It reads the store that the command being typed would
use, and only an existing one: completion never creates a store, and where there is none, or it
cannot be read, it offers nothing and says nothing.
"""

import sqlite3

from click.shell_completion import CompletionItem

from resellctl.errors import ResellError
from resellctl.output import clean
from resellctl.states import item_label

MAX_ITEMS = 100  # a shell shows no more than a screenful usefully


def _rows(ctx, sql, incomplete):
    """The rows of ``sql`` (one ``?``: the text typed so far) in the store named by --db as
    typed, RESELLCTL_DB or the configuration; none when there is no readable store."""
    from resellctl.config import store_path
    from resellctl.store import Store

    try:
        path, _ = store_path(ctx.find_root().params.get("db_path"))
        store = Store.open(path, migrate=False)
    except (ResellError, sqlite3.Error, OSError):
        return []
    try:
        return store.all(f"{sql} LIMIT {MAX_ITEMS}", (incomplete,))
    except sqlite3.Error:  # a store of an older schema
        return []
    finally:
        store.close()


def _items(rows):
    """CompletionItems of ``(value, help)`` rows. Values and help come from the books, tariff
    names from the upstream: a value a terminal cannot show as it is (control characters)
    is not offered, help is shown on one line, escaped."""
    return [CompletionItem(value, help=clean(help)) for value, help in rows
            if clean(value) == value]


def modules(ctx, param, incomplete):
    """Module names, with their type."""
    return _items(_rows(
        ctx, "SELECT name, type FROM processingmodule WHERE substr(name, 1, length(?1)) = ?1 "
             "ORDER BY name", incomplete))


def tariffs(ctx, param, incomplete):
    """Tariff names, with their item type and module."""
    rows = _rows(ctx, "SELECT pricelist.name, pricelist.itemtype, processingmodule.name "
                      "FROM pricelist JOIN processingmodule "
                      "ON processingmodule.id = pricelist.processingmodule "
                      "WHERE substr(pricelist.name, 1, length(?1)) = ?1 ORDER BY pricelist.name",
                 incomplete)
    return _items((name, f"{itemtype} of {module}") for name, itemtype, module in rows)


def services(ctx, param, incomplete):
    """Service numbers, with their tariff, client and status."""
    rows = _rows(ctx, "SELECT item.id, pricelist.name, item.client, item.status FROM item "
                      "LEFT JOIN pricelist ON pricelist.id = item.pricelist "
                      "WHERE substr(item.id, 1, length(?1)) = ?1 ORDER BY item.id", incomplete)
    return _items((str(number), " ".join(filter(None, (tariff, client, item_label(status)))))
                  for number, tariff, client, status in rows)

"""`resellctl init`: the store itself."""

import click

from resellctl.cli.common import app_of, say_created
from resellctl.output import say


@click.command()
def init():
    """Create the store and say where it is.

    The store is made with mode 0600 in a directory of mode 0700, where --db, RESELLCTL_DB,
    the configuration file (/etc/resellctl.conf) or the default names it. On an existing store
    it says so and changes nothing. No other command creates a store (but `modules add`, the
    first step of a new setup), so a mistyped path is an error, not a new empty store.
    """
    app = app_of()
    store = app.open_store(create=True, migrate=False)
    if not say_created(app):
        say(f"the store at {store.path} ({app.store_source}) exists already; nothing changed")

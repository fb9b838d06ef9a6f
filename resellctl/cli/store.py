"""`resellctl init` and `resellctl backup`: the store itself."""

import click

from resellctl.cli.common import app_of, say_created
from resellctl.errors import InputError
from resellctl.output import say


@click.command()
def init():
    """Create the store and say where it is.

    The store is made with mode 0600 in a directory of mode 0700, where --db, RESELLCTL_DB,
    the configuration file (/etc/resellctl.conf) or the default names it. On an existing store
    it says so and changes nothing. No other command creates a store (but `modules add`, the
    first step of a new setup), so a mistyped path is an error, not a new empty store.

    \b
    resellctl init
    resellctl --db /var/lib/resellctl/resellctl.db init
    """
    app = app_of()
    store = app.open_store(create=True, migrate=False)
    if not say_created(app):
        say(f"the store at {store.path} ({app.store_source}) exists already; nothing changed")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True,
              help="Replace PATH if it exists (a new file takes its place; never a link).")
@click.option("--with-secrets", is_flag=True,
              help="Also write the modules' passwords to PATH.secrets (mode 0600).")
def backup(path, force, with_secrets):
    """Copy the store consistently, even while cron writes to it.

    \b
    resellctl backup /var/backups/resellctl/resellctl-$(date +%F).db

    The copy is made with SQLite's online backup (a plain cp of a store in use may miss or
    tear what its -wal file holds), created with mode 0600, and checked with PRAGMA
    integrity_check. It holds no password: the modules' passwords stay in the secrets file
    beside the store, unless --with-secrets copies them to PATH.secrets.
    """
    from resellctl.backup import backup as copy_store

    if not path:
        raise InputError("the backup's path is empty", "Name the file to write.")
    app = app_of()
    size = copy_store(app.store, path, force=force, with_secrets=with_secrets)
    say(f"wrote {path}: a copy of the store at {app.store.path}, {size} bytes, integrity check "
        "ok")
    if with_secrets:
        say(f"wrote {path}.secrets: the modules' passwords (keep it as safe as they are)")
    else:
        say(f"it holds no password (they are in {app.store.secrets_path}; --with-secrets "
            "copies them)")

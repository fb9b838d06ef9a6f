"""`resellctl tariffs`: tariffs imported from an upstream."""

import click

from resellctl import catalog, output, views
from resellctl.cli import ResellGroup, complete
from resellctl.cli.common import app_of


@click.group(cls=ResellGroup)
def tariffs():
    """Tariffs (pricelists) imported from the upstream."""


@tariffs.command("import")
@click.argument("module", shell_complete=complete.modules)
def import_(module):
    """Import the tariffs of MODULE's upstream (re-import updates, never duplicates).

    \b
    resellctl tariffs import vds-up
    """
    app = app_of()
    name = app.store.module(module)["name"]  # the message names it, even when given by id
    added, updated, unchanged = catalog.import_tariffs(app.store, app.upstreams, name)
    output.say(f"tariffs of {name}: {added} added, {updated} updated, {unchanged} unchanged")


@tariffs.command("list")
@click.option("--module", help="Only the tariffs of this module.",
              shell_complete=complete.modules)
@output.options
def list_(module, as_json, quiet):
    """List tariffs with item type, module, prices (months=cost) and resources.

    \b
    resellctl tariffs list --module vds-up
    """
    app = app_of()
    output.emit_rows(app, views.tariffs(app.store, module),
                     ["id", "name", "itemtype", "processingmodule", "currency", "prices",
                      "addons"], as_json=as_json, quiet=quiet)

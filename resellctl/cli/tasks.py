"""`resellctl tasks`: the follow-up of operations."""

import click

from resellctl import manual, output, views
from resellctl.cli import ResellGroup, complete
from resellctl.cli.common import ITEM, app_of, emit_page, page_options, who


@click.group(cls=ResellGroup)
def tasks():
    """Tasks: the follow-up of operations (upstream or staff)."""


@tasks.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]), help="Only tasks in this status.")
@click.option("--item", type=ITEM, help="Only tasks of this service.",
              shell_complete=complete.services)
@page_options
@output.options
def list_(status, item, after, limit, last, as_json, quiet):
    """List tasks.

    \b
    resellctl tasks list --status open
    resellctl tasks list --item 17
    """
    app = app_of()
    emit_page(app, views.tasks(app.store, status, item, after, limit, last),
              ["id", "type", "item", "itemtype", "pricelist", "client", "runningoperation",
               "status", "opendate", "closedate"], as_json=as_json, quiet=quiet)


@tasks.command("close")
@click.argument("task_id", metavar="ID")
@click.option("--note", default="", help="What was done (kept in the service's history).")
def close(task_id, note):
    """Finish a manual task: apply its change to the service and set its operation done.

    \b
    resellctl tasks close 7 --note 'disk resized to 60 GB'
    """
    app = app_of()
    op, returned = manual.close_task(app.store, task_id, note=note, who=who())
    output.say(f"task {task_id} closed; operation {op['id']} ({op['operation']}) done; "
               f"service {op['item']} updated")
    if returned:
        output.say(f"service {op['item']} is back under module {returned}")

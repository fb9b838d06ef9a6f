"""`resellctl services` and `resellctl set-module`: services and their lifecycle."""

import click

from resellctl import kinds, lifecycle, manual, output, views
from resellctl.cli import ResellGroup, complete
from resellctl.cli.common import (ITEM_LABELS, ITEM_STATUS, OUTCOME_COLUMNS, app_of, confirm,
                                  counted, emit_page, engine_of, outcome_rows, page_options,
                                  pairs, read_ids, report_failures, who, yes_option)
from resellctl.errors import InputError


@click.group(cls=ResellGroup)
def services():
    """Services: list, show and change them."""


@services.command("list")
@click.option("--status", type=ITEM_STATUS, metavar="STATUS",
              help=f"Only services in this status: {ITEM_STATUS.NAMES}.")
@click.option("--client", help="Only services of this client.")
@click.option("--missing", is_flag=True,
              help="Only services missing upstream: their upstream item is not there.")
@page_options
@output.options
def list_(status, client, missing, after, limit, last, as_json, quiet):
    """List services.

    \b
    resellctl services list --status active --client acme
    resellctl services list --last 20
    resellctl services list --missing
    """
    app = app_of()
    emit_page(app, views.services(app.store, status, client, after, limit, last, missing),
              ["id", "client", "pricelist", "itemtype", "status", "processingmodule",
               "expiredate", "upstream_id"], as_json=as_json, quiet=quiet, labels=ITEM_LABELS)


SHOW_SECTIONS = [
    ("params", ["name", "value"]), ("addons", ["name", "value"]),
    ("operations", ["id", "operation", "status", "cdate", "task"]),
    ("tasks", ["id", "type", "status", "opendate", "closedate"]),
    ("history", ["date", "source", "who", "message"])]


@services.command("show")
@click.argument("item_id", metavar="ID", shell_complete=complete.services)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(item_id, as_json):
    """Show one service with its parameters, resources, history, operations and tasks.

    \b
    resellctl services show 17
    resellctl services show 17 --json
    """
    app = app_of()
    service = views.service(app.store, item_id)
    if as_json or not app.stdout_isatty:
        output.emit_one(app, service, as_json, sections=SHOW_SECTIONS)
        return
    # On a terminal each section is a table: history messages and parameters are upstream
    # text, and the table renders them as plain text, never as markup.
    output.emit_one(app, {k: v for k, v in service.items()
                          if k not in dict(SHOW_SECTIONS)}, labels=ITEM_LABELS)
    for name, columns in SHOW_SECTIONS:
        rows = service[name]
        if isinstance(rows, dict):
            rows = [{"name": k, "value": v} for k, v in rows.items()]
        click.echo(f"\n{name}:")
        if rows:
            output.emit_rows(app, rows, columns, wrap=True)
        else:
            click.echo("  (none)")


def _change(item_ids, kind, yes=False, **args):
    """Ask for the change ``kind`` of each service of ``item_ids``: one operation each, one
    row each. A close is confirmed first (``yes``: given --yes)."""
    app = app_of()
    if not item_ids:  # `-` with nothing on stdin: a quiet day, not an error
        output.say(f"no services to {kinds.kind(kind).verb}: nothing read from stdin")
        return
    planned = lifecycle.plan_changes(app.store, item_ids, kind, **args)
    if kind == "close":
        confirm(app, yes, "services close",
                [f"{lifecycle.service_label(app.store, p.item)}: {p.close_effect()}"
                 for p in planned],
                f"Close {counted(len(planned), 'service')}?")
    outcomes = lifecycle.make_changes(engine_of(app), planned, who=who())
    output.emit_rows(app, outcome_rows(outcomes), OUTCOME_COLUMNS)
    for outcome in outcomes:
        if outcome.task and outcome.manual:
            output.say(f"task {outcome.task} waits for staff; once the change is made: "
                       f"resellctl tasks close {outcome.task} --note TEXT")
    report_failures(outcomes)


IDS = "ID... | -"


@services.command("prolong")
@click.argument("item_ids", metavar=IDS, nargs=-1, required=True,
                shell_complete=complete.services)
@click.option("--period", type=int, help="Months (default: each service's period).")
def prolong(item_ids, period):
    """Extend services by a period (`-`: read the ids from stdin).

    \b
    resellctl services prolong 17 --period 12
    """
    _change(read_ids(item_ids, "service"), "prolong", period=period)


@services.command("suspend")
@click.argument("item_ids", metavar=IDS, nargs=-1, required=True,
                shell_complete=complete.services)
def suspend(item_ids):
    """Suspend active services (`-`: read the ids from stdin).

    \b
    resellctl services suspend 17
    """
    _change(read_ids(item_ids, "service"), "suspend")


@services.command("resume")
@click.argument("item_ids", metavar=IDS, nargs=-1, required=True,
                shell_complete=complete.services)
def resume(item_ids):
    """Resume suspended services (`-`: read the ids from stdin).

    \b
    resellctl services resume 17
    """
    _change(read_ids(item_ids, "service"), "resume")


@services.command("close")
@click.argument("item_ids", metavar=IDS, nargs=-1, required=True,
                shell_complete=complete.services)
@yes_option
def close(item_ids, yes):
    """Delete services, upstream too (`-`: read the ids from stdin).

    Asks first, naming each service; without a terminal on stdin it needs --yes.

    \b
    resellctl services close 17
    resellctl services list --client gone -q | resellctl services close - --yes
    """
    _change(read_ids(item_ids, "service"), "close", yes)


@services.command("change-tariff")
@click.argument("item_id", metavar="ID", shell_complete=complete.services)
@click.argument("tariff", shell_complete=complete.tariffs)
def change_tariff(item_id, tariff):
    """Change a service's tariff (a vds disk change needs a manual module: see the message).

    \b
    resellctl services change-tariff 17 VDS-1-RAM
    """
    _change([item_id], "changepricelist", tariff=tariff)


@services.command("set-param")
@click.argument("item_id", metavar="ID", shell_complete=complete.services)
@click.argument("assignments", metavar="K=V...", nargs=-1, required=True)
def set_param(item_id, assignments):
    """Set service parameters.

    \b
    resellctl services set-param 17 hostname=www.example.com
    """
    params = pairs(assignments, "a parameter")
    if not params:
        raise InputError("give at least one K=V")
    _change([item_id], "setparam", params=params)


@click.command("set-module", cls=click.Command)
@click.argument("item_id", metavar="ITEM", shell_complete=complete.services)
@click.argument("module", shell_complete=complete.modules)
@click.option("--force", is_flag=True, help="Switch even while an operation waits upstream.")
@click.option("--until-task-closed", is_flag=True,
              help="Switch back to the current module when the service's manual task is closed.")
@yes_option
def set_module(item_id, module, force, until_task_closed, yes):
    """Switch service ITEM to processing MODULE (e.g. to a manual module and back).

    With --force it asks first; without a terminal on stdin that needs --yes.

    \b
    resellctl set-module 17 manual --until-task-closed
    resellctl set-module 17 vds-up
    """
    app = app_of()
    if force:
        switch = manual.check_module_switch(app.store, item_id, module, force=True,
                                            until_task_closed=until_task_closed)
        waiting = switch.waiting
        left = (f", leaving operation {waiting['id']} ({waiting['operation']}) waiting under "
                f"{switch.old['name']}" if waiting else " (no operation of it is waiting)")
        confirm(app, yes, "set-module --force",
                [f"{lifecycle.service_label(app.store, switch.item)}: processing module "
                 f"{switch.old['name']} -> {switch.new['name']}{left}"],
                "Switch this service?")
    old, new = manual.set_module(app.store, item_id, module, who=who(), force=force,
                                 until_task_closed=until_task_closed)
    click.echo(f"service {item_id}: {old} -> {new}")


@services.command("import")
@click.argument("module", shell_complete=complete.modules)
@click.option("--upstream-id", "upstream_ids", multiple=True, metavar="ID",
              help="Import this upstream item only (repeatable); default: every item of the "
                   "account that no service is linked to.")
@click.option("--client", default="", help="The client the imported services are for.")
@output.options
def import_(module, upstream_ids, client, as_json, quiet):
    """Adopt MODULE's upstream items that no service in the books is linked to, as services:
    nothing is ordered, nothing charged, and each service's history says it was imported.

    \b
    resellctl services import vds-up --client acme
    resellctl services import vds-up --upstream-id 4211 --upstream-id 4212
    """
    from resellctl import adopt

    output.check_format(as_json, quiet)
    app = app_of()
    imported, skipped = adopt.import_items(app.store, app.upstreams, module, upstream_ids,
                                           client, who=who())
    output.emit_rows(app, imported, ["item", "upstream_id", "pricelist", "itemtype", "status",
                                     "expiredate"], as_json=as_json, quiet=quiet, key="item",
                     labels=ITEM_LABELS)
    for reason in skipped:
        output.say(f"passed over: {reason}")
    output.say(f"{counted(len(imported), 'service')} imported")


@services.command("link")
@click.argument("item_id", metavar="ID", shell_complete=complete.services)
@click.argument("upstream_id")
def link(item_id, upstream_id):
    """Link service ID to upstream item UPSTREAM_ID by hand (of the service's tariff, held by
    no other service): for an order whose answer was lost when several items could be it. A
    pending order of the service is taken as accepted by that item.

    \b
    resellctl services link 17 4211
    """
    from resellctl import adopt

    app = app_of()
    item = adopt.link(engine_of(app), item_id, upstream_id, who=who())
    output.say(f"service {item['id']} is linked to upstream item {item['upstream_id']}")

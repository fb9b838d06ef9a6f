"""`resellctl ops`: running operations."""

import click

from resellctl import lifecycle, output, views
from resellctl.cli import ResellGroup, complete
from resellctl.cli.common import (ITEM, OUTCOME_COLUMNS, app_of, confirm, counted, emit_page,
                                  engine_of, outcome_rows, page_options, read_ids,
                                  report_failures, who, yes_option)
from resellctl.states import OpStatus


@click.group(cls=ResellGroup)
def ops():
    """Running operations: list, show, start."""


@ops.command("list")
@click.option("--status", type=click.Choice([s.value for s in OpStatus]),
              help="Only operations in this status.")
@click.option("--item", type=ITEM, help="Only operations of this service.",
              shell_complete=complete.services)
@page_options
@output.options
def list_(status, item, after, limit, last, as_json, quiet):
    """List running operations, oldest first.

    \b
    resellctl ops list --status failed
    resellctl ops list --status failed -q | resellctl ops start -
    """
    app = app_of()
    emit_page(app, views.operations(app.store, status, item, after, limit, last),
              ["id", "operation", "item", "client", "processingmodule", "status", "trycount",
               "task", "cdate", "reason"], as_json=as_json, quiet=quiet)


@ops.command("show")
@click.argument("op_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(op_id, as_json):
    """Show one operation with its error history.

    \b
    resellctl ops show 12
    resellctl ops show 12 --json
    """
    app = app_of()
    output.emit_one(app, views.operation(app.store, op_id), as_json,
                    sections=[("errors", ["date", "type", "message"])])


@ops.command("start")
@click.argument("op_ids", metavar="ID... | -", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True,
              help="Print the request that would be sent (password redacted) and the error "
                   "history; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of outcomes.")
def start(op_ids, dry_run, as_json):
    """Restart failed or new operations (`-`: read the ids from stdin).

    \b
    resellctl ops start 12
    resellctl ops list --status failed -q | resellctl ops start -
    """
    app = app_of()
    ids = read_ids(op_ids, "operation")
    if not ids:
        output.say("no operations to start")
        return
    engine = engine_of(app)
    if dry_run:
        for op_id in engine.startable(ids):  # what the real run would refuse, it refuses
            shown = views.operation(app.store, op_id)
            request = engine.dry_run(op_id)
            if as_json:
                shown["request"] = request
            output.emit_one(app, shown, as_json,
                            sections=[("errors", ["date", "type", "message"])])
            if as_json:
                continue
            if isinstance(request, dict):
                output.say(f"\nrequest (not sent):\n  {request['method']} {request['url']}",
                           err=False)
                for name, value in request["form"].items():
                    # One line each, though a tariff's upstream id or a parameter hold a break.
                    output.say(f"  {output.clean(name)}={output.clean(value)}", err=False)
            else:
                output.say(f"\nrequest: {request}", err=False)
        return
    outcomes = engine.start(ids)
    output.emit_rows(app, outcome_rows(outcomes), OUTCOME_COLUMNS, as_json=as_json)
    report_failures(outcomes)


@ops.command("cancel")
@click.argument("op_ids", metavar="ID... | -", nargs=-1, required=True)
@click.option("--force", is_flag=True,
              help="Also give up waiting operations whose event will never come (rejected, "
                   "or lost upstream), closing their tasks; asks first.")
@yes_option
def cancel(op_ids, force, yes):
    """Give up failed or new operations, so their services take other changes again.

    A cancelled order deletes its service in the books. An order that may have reached the
    upstream is refused: `resellctl ops start` it instead, which adopts what the upstream made.
    With --force it asks first; without a terminal on stdin that needs --yes.

    \b
    resellctl ops cancel 12
    """
    app = app_of()
    ids = read_ids(op_ids, "operation")
    if not ids:
        output.say("no operations to cancel")
        return
    found = lifecycle.cancellable(app.store, ids, force=force)
    if force:
        confirm(app, yes, "ops cancel --force",
                [f"operation {op['id']} ({op['operation']}, {op['status']}) of "
                 f"{lifecycle.service_label(app.store, app.store.item(op['item']))}: "
                 f"{lifecycle.cancel_effect(app.store, op)}" for op in found],
                f"Give up {counted(len(found), 'operation')}?")
    user = who()
    for op_id in ids:
        op = lifecycle.cancel(app.store, op_id, who=user, force=force)
        closed = op["operation"] == "open" and op["status"] != "waiting"
        output.say(f"operation {op['id']} ({op['operation']}) of service {op['item']} "
                   "cancelled" + ("; the service is closed" if closed else ""))

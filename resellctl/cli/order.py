"""`resellctl order`: order services of a tariff."""

import functools

import click

from resellctl import lifecycle, output
from resellctl.cli import complete
from resellctl.cli.common import (OUTCOME_COLUMNS, app_of, engine_of, outcome_rows, pairs,
                                  report_failures, who)


@click.command()
@click.argument("tariff", shell_complete=complete.tariffs)
@click.option("--quantity", type=int, default=1, show_default=True, metavar="N",
              help="How many services (1-100).")
@click.option("--period", type=int, metavar="MONTHS",
              help="Months (one the tariff sells; default its shortest).")
@click.option("--client", default="", help="The client the services are for.")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="A service parameter sent with the order (repeatable).")
@click.option("--addon", "addons", multiple=True, metavar="NAME=VALUE",
              help="A resource differing from the tariff, e.g. disk=40 (repeatable).")
@output.options
def order(tariff, quantity, period, client, params, addons, as_json, quiet):
    """Order QUANTITY services of TARIFF: one service, one operation and, once accepted, one
    task each.

    \b
    resellctl order VDS-1 --quantity 3 --period 1 --client acme
    resellctl order VDS-1 --param ostempl=debian-12 --addon disk=40
    """
    output.check_format(as_json, quiet)
    app = app_of()
    progress = output.Progress(app.stderr_isatty and quantity > 1 and not quiet, "ordered",
                               total=quantity)
    try:
        outcomes = lifecycle.order(engine_of(app), tariff, quantity=quantity, period=period,
                                   client=client, params=pairs(params, "--param"),
                                   addons=pairs(addons, "--addon"), who=who(),
                                   progress=functools.partial(progress, tariff))
    finally:
        progress.close()
    output.emit_rows(app, outcome_rows(outcomes), OUTCOME_COLUMNS, as_json=as_json,
                     quiet=quiet, key="item")
    report_failures(outcomes)

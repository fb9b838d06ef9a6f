"""`resellctl status`: whether all is well, for an administrator and for monitoring."""

import click

from resellctl import output
from resellctl.cli.common import app_of

COUNTS = ("applied", "skipped", "unknown", "rejected", "completed")


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (for a monitoring system).")
def status(as_json):
    """Tell whether all is well, from the books alone: no upstream is asked, nothing written.

    Each billmanager module's last sync (when, how long, what it did, its error) and its
    balance against its minimum; operations failed, not sent or waiting longer than expected;
    open tasks for staff; events that could not be applied; services missing upstream. The
    thresholds are in the configuration file's [status] table.

    Exit status as monitoring plugins have it (not as the other commands): 0 all is well,
    1 warning, 2 critical.

    \b
    resellctl status
    resellctl status --json
    """
    from resellctl import config, health

    app = app_of()
    _, settings = config.load()
    limits = {name: settings[f"status.{name}"] for name in config.STATUS}
    store = app.store
    report = {"store": store.path, "store_source": app.store_source,
              **health.report(store, limits)}
    if as_json:
        click.echo(output.to_json(report, indent=2))
    else:
        # Each line made one line: an upstream's error message may hold a line break.
        click.echo("\n".join(map(output.clean, _lines(app, report, health.said_ago))))
    click.get_current_context().exit(report["exit_status"])


def _lines(app, report, said_ago):
    """The report for people: a first line that says it all, then the details."""
    time = output.local_time if app.stdout_isatty else str
    limits = report["thresholds"]
    problems = [f"{p['level']}: {_about(p)}" for p in report["problems"]]
    if problems:
        more = len(problems) - 1
        yield (f"{report['status'].upper()}: {_about(report['problems'][0])}"
               + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))
    else:
        yield "OK: all is well"
    yield f"store: {report['store']} ({report['store_source']})"
    for m in report["modules"]:
        yield f"module {m['name']} ({m['api']}" + (
            ", auto re-run off)" if not m["auto_rerun"] else ")")
        run = m["last_run"]
        if run is None:
            yield "  last sync: never"
        else:
            did = ", ".join(f"{run[c]} {c}" for c in COUNTS)
            yield (f"  last sync: {time(run['started'])} ({said_ago(run['minutes_ago'] or 0)}), "
                   f"{run['outcome']} in {run['seconds']:g} s: {did}, {run['rerun']} re-run "
                   f"for funds, {run['retried']} stuck re-run"
                   + (f"; {run['error']}" if run["error"] else ""))
            if m["last_ok"] != run["started"]:
                yield f"  last ok:   {time(m['last_ok']) if m['last_ok'] else 'never'}"
        if m["balance"] is None:
            yield "  balance:   not read yet"
        else:
            yield (f"  balance:   {m['balance']} {m['currency'] or ''}, minimum "
                   f"{m['min_balance'] or 'none'}, read {time(m['balance_date'])}")
    ops, tasks, events = report["operations"], report["tasks"], report["events"]
    yield (f"operations: {ops['failed']} failed, {ops['new']} not sent ({ops['new_late']} for "
           f"over {limits['new_warning_minutes']:g} minutes), {ops['waiting']} waiting upstream "
           f"({ops['waiting_late']} for over {limits['waiting_warning_hours']:g} hours)")
    yield (f"tasks for staff: {tasks['open']} open ({tasks['open_late']} for over "
           f"{limits['task_warning_hours']:g} hours)")
    yield (f"events: {events['problem']} could not be applied ({events['problem_recent']} in "
           f"the last {limits['problem_events_hours']:g} hours)")
    yield f"services: {report['services']['missing']} missing upstream"
    if problems:
        yield ""
        yield "problems:"
        yield from (f"  {line}" for line in problems)


def _about(problem):
    return (f"module {problem['module']}: " if problem["module"] else "") + problem["message"]

"""`resellctl checkevent` (the cron job) and `resellctl events` (its log)."""

import dataclasses

import click

from resellctl import errors, output, sync, views
from resellctl.cli import ResellGroup, complete
from resellctl.cli.common import app_of, emit_page, engine_of, page_options
from resellctl.errors import ExitStatus

PROGRESS_FROM = 5000  # events: below this a progress bar only flickers
MAX_ACK_AFTER = 3650  # days: beyond ten years the date arithmetic overflows


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan, which every comparison with its bounds lets by."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


def summary_line(s):
    line = (f"{s.module}: {s.applied} applied, {s.skipped} skipped (already applied), "
            f"{s.unknown} unknown, {s.rejected} rejected, {s.completed} operations completed")
    if s.rerun:
        line += f", {s.rerun} re-run for funds"
    if s.retried:
        line += f", {s.retried} stuck re-run"
    if s.foreign:
        line += f", {s.foreign} foreign upstream"
    if s.missing:
        line += f", {s.missing} missing upstream"
    if s.more:
        line += f"; more {'changes' if s.polled else 'events'} wait for the next run"
    return line


@click.command()
@click.option("--module", help="Only this module.", shell_complete=complete.modules)
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing when all is well; only problems, each when it appears and "
                   "then at most once a day while it lasts.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--max-events", type=click.IntRange(min=1), metavar="N",
              help="Apply at most N events (or changes found by polling) per module; the rest "
                   "waits for the next run.")
@click.option("--time-budget", type=Finite(min=1), default=sync.DEFAULT_BUDGET,
              show_default=True, metavar="SECONDS",
              help="End the run by this long: no upstream call runs past it.")
@click.option("--from", "from_id", type=click.IntRange(min=1), metavar="EVENT_ID",
              help="Re-read from this event id (or from the module's position, if that is "
                   "earlier), after restoring a backup: applies only what is not applied.")
@click.option("--ack-after", type=Finite(0, MAX_ACK_AFTER), default=sync.DEFAULT_ACK_AFTER,
              show_default=True, metavar="DAYS",
              help="Let the upstream discard events only this long after they were applied, "
                   "so that a restored store can re-read them (--from); 0: at once.")
@click.option("--dry-run", is_flag=True,
              help="Print what the run would change (the events that wait, or the differences "
                   "polling finds), applying and acknowledging nothing.")
def checkevent(module, quiet, as_json, max_events, time_budget, from_id, ack_after, dry_run):
    """Keep every service in step with its upstream (what cron runs).

    The upstream's events are applied, or, for a real BILLmanager, what listing and comparing
    its services finds.

    One run at a time: a second run exits at once with status 75. Exit status 1 when an
    upstream refused (bad credentials...), 75 when one stayed unreachable; the other modules
    are synced all the same. After that, operations that failed for want of funds or on a
    temporary error, or were never sent, are re-run. Each run is recorded for `resellctl
    status`.

    \b
    */5 * * * *  resellctl checkevent -q
    """
    app = app_of()
    progress = output.Progress(app.stderr_isatty and not quiet and not as_json, "events",
                               show_from=PROGRESS_FROM)
    try:
        summaries = sync.run(engine_of(app), module, max_events=max_events,
                             budget=time_budget, from_id=from_id, progress=progress,
                             ack_after=ack_after, dry_run=dry_run, tell_once=quiet)
    finally:
        progress.close()
    if dry_run:
        _preview(app, summaries, as_json)
    elif as_json:
        click.echo(output.to_json([{"module": s.module,
                                    **dataclasses.asdict(s, dict_factory=_no_preview)}
                                   for s in summaries], indent=2))
    for s in summaries:
        if dry_run:
            _report_errors(s)
            continue
        problem = s.unknown or s.rejected
        worked = s.applied or s.skipped or problem or s.completed or s.rerun or s.retried
        if not as_json and (problem or not (quiet or (s.error and not worked))):
            output.say(summary_line(s), err=False)
        if problem:
            output.say(f"{s.module}: {s.unknown + s.rejected} event(s) could not be applied; "
                       "see `resellctl events list --problem`")
        for item in s.new_missing:
            output.say(f"warning: module {s.module}: service {item} is missing upstream: its "
                       f"item is not there any more; see `resellctl services show {item}`")
        # A problem that lasts is told under -q when it appears, then once a day.
        for p in s.problems:
            if p.tell or not quiet:
                output.say(f"{p.level}: module {s.module}: {output.clean(p.text)}")
    failed = [s for s in summaries if s.error]
    if failed:
        # Each failure has had its line; the exit status says the rest.
        transient = all(s.error_kind == errors.TRANSIENT for s in failed)
        click.get_current_context().exit(ExitStatus.TEMPFAIL if transient else ExitStatus.ERROR)
    if not summaries and not quiet:
        output.say("no billmanager modules to sync")


def _report_errors(s):
    for warning in s.warnings:
        output.say(f"warning: module {s.module}: {warning}")
    if s.error:
        output.say(f"error: module {s.module}: {s.error}")


def _no_preview(fields):
    return {name: value for name, value in fields if name not in ("changes", "problems")}


PREVIEW_COLUMNS = ["module", "item", "upstream_item", "type", "event", "status", "expiredate",
                   "pricelist", "params", "addons", "msg", "rejected"]


def _preview(app, summaries, as_json):
    """checkevent --dry-run: the changes a run would make, one row each."""
    rows = [{"module": s.module, **change} for s in summaries for change in s.changes]
    if as_json:
        click.echo(output.to_json(rows, indent=2))
    else:
        output.emit_rows(app, rows, PREVIEW_COLUMNS)
    output.say(f"{len(rows)} change(s) would be applied; nothing was changed (--dry-run)")


@click.group(cls=ResellGroup)
def events():
    """The event log kept by checkevent."""


@events.command("list")
@click.option("--problem", is_flag=True, help="Only events that could not be applied.")
@click.option("--module", help="Only events of this module.",
              shell_complete=complete.modules)
@page_options
@output.options
def list_(problem, module, after, limit, last, as_json, quiet):
    """List received events with their outcome and reason (`--json`: each record as it came).

    \b
    resellctl events list --problem
    resellctl events list --problem --json
    """
    app = app_of()
    emit_page(app, views.events(app.store, problem, module, after, limit, last),
              ["id", "processingmodule", "event_id", "type", "upstream_item", "item", "outcome",
               "reason", "received"], as_json=as_json, quiet=quiet)

"""`resellctl demo`: the whole reselling story against the embedded simulator, step by step."""

import os
import shlex
import tempfile

import click

from resellctl.errors import ExitStatus, ResellError

USERNAME = "reseller@example.net"


class Demo:
    """Runs resellctl commands in-process, printing each one and its exit status."""

    def __init__(self, db_path):
        self.db_path = db_path

    def run(self, *args, expect=0):
        from resellctl.cli import cli

        click.secho(f"\n$ resellctl {shlex.join(args)}", bold=True)
        try:
            cli.main(args=list(args), prog_name="resellctl", standalone_mode=False,
                     obj=None)
            status = 0
        except click.ClickException as e:
            e.show()
            status = e.exit_code
        except click.exceptions.Exit as e:
            status = e.exit_code
        if status:
            click.secho(f"(exit status {status})", dim=True)
        if status != expect:
            raise ResellError(f"demo: `resellctl {shlex.join(args)}` exited {status}, "
                              f"expected {expect}")
        return status

    def note(self, text):
        click.secho(f"\n# {text}", fg="cyan")


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary store and print where it is.")
def demo(keep):
    """A guided run against the embedded simulator in a temporary store.

    Starts the embedded selling BILLmanager on a free loopback port, adds a module, imports
    tariffs, orders a virtual server with too little upstream balance (the operation fails, no
    task), tops the balance up, restarts the operation, runs checkevent, and shows the service
    active with its operation done and its task closed.

    \b
    resellctl demo
    """
    from resellctl.sim import Simulator, serve

    workdir = tempfile.mkdtemp(prefix="resellctl-demo-")
    db_path = os.path.join(workdir, "resellctl.db")
    password_file = os.path.join(workdir, "vds-up.pw")
    password = os.urandom(12).hex()
    fd = os.open(password_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    sim = Simulator(username=USERNAME, password=password, balance="3.00")
    previous = os.environ.get("RESELLCTL_DB")
    os.environ["RESELLCTL_DB"] = db_path
    try:
        with serve(sim) as server:
            _story(Demo(db_path), server, password_file)
    finally:
        if previous is None:
            os.environ.pop("RESELLCTL_DB", None)
        else:
            os.environ["RESELLCTL_DB"] = previous
        if not keep:
            for name in os.listdir(workdir):
                os.unlink(os.path.join(workdir, name))
            os.rmdir(workdir)
    click.secho("\nDone: the service is active, its operation done and its task closed.",
                fg="green")
    if keep:
        click.echo(f"The store is kept at {db_path} (RESELLCTL_DB={db_path}).")
    return ExitStatus.SUCCESS


def _story(demo, server, password_file):
    demo.note(f"An embedded selling BILLmanager listens at {server.url}; the reseller's "
              "account there holds 3.00 EUR.")
    demo.note(f"The store is a temporary file: export RESELLCTL_DB={demo.db_path}")
    demo.run("modules", "add", "vds-up", "--type", "billmanager", "--url", server.url,
             "--username", USERNAME, "--password-file", password_file, "--min-balance", "20")
    demo.run("modules", "add", "manual", "--type", "manual")
    demo.run("tariffs", "import", "vds-up")
    demo.run("tariffs", "list")
    demo.note("VDS-1 costs 5.00 EUR a month: more than the balance. The operation fails and "
              "no task is created.")
    demo.run("order", "VDS-1", "--period", "1", "--client", "acme",
             "--param", "ostempl=debian-12", expect=1)
    demo.run("ops", "list", "--status", "failed")
    demo.run("ops", "show", "1")
    demo.run("tasks", "list")
    demo.note("The provider tops up the selling account (an upstream-side action).")
    demo.run("sim", "topup", "50", "--url", server.url)
    demo.note("Restart the operation (for many: resellctl ops list --status failed -q | "
              "resellctl ops start -).")
    demo.run("ops", "start", "1")
    demo.run("tasks", "list")
    demo.note("cron runs checkevent every five minutes; the upstream's `open` event completes "
              "the operation and closes the task.")
    demo.run("checkevent")
    demo.run("services", "show", "1")
    demo.run("ops", "list")
    demo.run("tasks", "list")
    _check(demo.db_path)


def _check(db_path):
    """The story's end, checked in the store rather than taken on trust."""
    from resellctl.store import Store

    store = Store.open(db_path)
    try:
        item, op = store.item(1), store.operation(1)
        task = store.task(op["task"]) if op["task"] else None
        if item["status"] != 2 or op["status"] != "done" or not task or task["status"] != "closed":
            raise ResellError(f"demo: expected service 1 active, operation 1 done and its task "
                              f"closed; found status {item['status']}, operation "
                              f"{op['status']}, task {task['status'] if task else 'none'}")
    finally:
        store.close()

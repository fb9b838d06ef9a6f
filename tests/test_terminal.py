"""What a person at a terminal meets beyond tables, and what a pipe or cron never gets:
progress, Ctrl-C, a mistyped command."""

from conftest import tsv


def test_an_order_of_several_shows_its_progress_on_a_terminal_only(run, upstream):
    on_terminal = run("order", "VDS-1", "--quantity", "3", stderr_tty=True)
    assert on_terminal.exit_code == 0, on_terminal
    assert "VDS-1: 3 of 3 ordered" in on_terminal.stderr
    assert len(tsv(on_terminal.stdout)) == 3  # the rows, on stdout as ever
    for args in (("--quantity", "3"), ("--quantity", "3", "-q")):
        piped = run("order", "VDS-1", *args)
        assert piped.exit_code == 0 and piped.stderr == "", piped
    assert run("order", "VDS-1", "-q", "--quantity", "3", stderr_tty=True).stderr == ""
    assert run("order", "VDS-1", stderr_tty=True).stderr == ""  # one: nothing to follow

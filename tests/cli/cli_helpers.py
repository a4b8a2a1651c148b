"""Helpers for CLI tests: run a command in-process and expect success, or exactly one `error:` line."""

from typer.testing import CliRunner

from gramr2_cli.cli import app

runner = CliRunner()


def ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


def one_error(args, *needles):
    """The command exits 1 with exactly one `error:` line that contains every needle, and no traceback.
    Returns the result (its `output` holds the hint line too)."""
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    errors = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in errors[0], errors[0]
    return r

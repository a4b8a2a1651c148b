"""Every command has --help (exit 0); usage errors exit 2; user errors exit 1 with one line; version; env."""

import pytest
import typer
from typer.testing import CliRunner

from gramr2_cli.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            yield from _commands(cmd, (*prefix, name))


ALL = sorted(_commands(typer.main.get_command(app)))


def test_every_design_stage_is_listed():
    names = {" ".join(c) for c in ALL}
    for stage in ("data synth", "data import", "data export", "data stats", "data merge", "data split",
                  "prover-train", "prove", "pretrain", "self-label", "filter", "finetune", "adapt",
                  "rank pairs", "rank list", "evaluate", "probe", "data augment", "serve", "env", "config check",
                  "model tiny"):
        assert stage in names, stage


@pytest.mark.parametrize("cmd", ALL, ids=[" ".join(c) for c in ALL])
def test_help(cmd):
    r = runner.invoke(app, [*cmd, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("gramr2 ")


def test_unknown_command_is_usage_error():
    r = runner.invoke(app, ["bogus"])
    assert r.exit_code == 2


def test_config_check_reports_unknown_key_in_one_line(tmp_path):
    rec = tmp_path / "r.yaml"
    rec.write_text("train:\n  lr_rate: 1\n")
    r = runner.invoke(app, ["config", "check", str(rec)])
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown config key 'train.lr_rate' (did you mean 'train.lr'")
    assert "Traceback" not in r.output


def test_threads_are_set_for_every_command_but_the_data_ones(tmp_path, monkeypatch):
    """GRAMR2_THREADS is applied before a command runs (set_threads imports torch), except for `data …`, which
    never loads torch: importing it there cost each data command ~2.5 s."""
    from gramr2_cli import cli
    calls = []
    monkeypatch.setattr(cli, "set_threads", lambda: calls.append(1))
    assert runner.invoke(app, ["data", "synth", "--n", "4", "-o", str(tmp_path / "s")]).exit_code == 0
    assert calls == []
    rec = tmp_path / "r.yaml"
    rec.write_text("seed: 3\n")
    assert runner.invoke(app, ["config", "check", str(rec)]).exit_code == 0
    assert calls == [1]


def test_config_check_ok(tmp_path):
    rec = tmp_path / "r.yaml"
    rec.write_text("train:\n  lr: 1e-5\n")
    r = runner.invoke(app, ["config", "check", str(rec), "-s", "seed=3", "--show"])
    assert r.exit_code == 0 and "lr: 1.0e-05" in r.output and "seed: 3" in r.output


def test_env_prints_versions():
    import importlib.metadata as md
    r = runner.invoke(app, ["env"])
    assert r.exit_code == 0
    rows = {line[:14].strip(): line[15:] for line in r.output.splitlines()}
    # the installed versions themselves, not just the names (printed even when a package is missing)
    assert rows["torch"] == md.version("torch") and rows["transformers"] == md.version("transformers")
    assert rows["typer"] == md.version("typer") and rows["gramr2"] == md.version("gramr2")


def test_keyboard_interrupt_exits_130(monkeypatch):
    from gramr2_cli.core import config

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(config, "resolve", boom)
    r = runner.invoke(app, ["config", "check", "x.yaml"])
    assert r.exit_code == 130
    assert "interrupted; rerun the same command to resume" in r.output


# ---------------------------------------------------------------- issue 17 item 12: what the docs promise

def test_debug_after_the_subcommand_shows_the_traceback(tmp_path, monkeypatch):
    """`--debug` belongs to the root command; it used to be rejected (exit 2) after the subcommand."""
    import sys

    from gramr2_cli import cli
    from gramr2_cli.core.errors import GramrError
    assert cli.hoist_debug(["filter", "x", "--debug", "--", "--debug"]) == ["--debug", "filter", "x", "--", "--debug"]
    monkeypatch.setattr(sys, "argv", ["gramr2", "filter", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o"),
                                      "--debug"])
    with pytest.raises(GramrError, match="no such file or directory"):    # re-raised: a traceback, not exit 1
        cli.main()


def test_stdout_closed_early_exits_0_quietly(tmp_path):
    """`gramr2 data synth -o - | head -1` (docs/synth.md): the reader leaves after one line; exit 0, no error."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", "from gramr2_cli.cli import main; main()", "data", "synth",
                          "--n", "400", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert first.startswith(b'{"id": ') and "error" not in err and "Traceback" not in err


@pytest.mark.parametrize("cmd", [["data", "import"], ["data", "export"]])
def test_unknown_format_is_a_usage_error(tmp_path, cmd):
    """docs/errors.md: a bad option value is Typer's usage error, exit 2 (it was exit 1)."""
    src = tmp_path / "x.jsonl"
    src.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    r = runner.invoke(app, [*cmd, str(src), "--format", "bogus", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown" in r.output and "'bogus'" in r.output
    assert not (tmp_path / "o").exists()


def test_adapt_help_names_where_the_adapter_goes():
    """train.core._save: merged -> the adapter in OUTPUT/adapter/; --no-merge-lora -> the adapter in OUTPUT."""
    r = runner.invoke(app, ["adapt", "--help"], terminal_width=200)
    text = " ".join(r.output.split())
    assert "kept in OUTPUT/adapter/" in text and "--no-merge-lora writes only the adapter, into OUTPUT itself" in text


def test_a_warning_is_one_line_on_stderr(tmp_path):
    """The console script prints warnings as `warning: …` (no source path, no code line)."""
    import subprocess
    import sys
    rec = tmp_path / "r.yaml"
    rec.write_text("serve:\n  pairing: round-robin\n")
    r = subprocess.run([sys.executable, "-c", "from gramr2_cli.cli import main; main()", "config", "check",
                        str(rec)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stderr.splitlines() if "round-robin" in x]
    assert said == ["warning: serve.pairing: 'round-robin' is an old spelling; use 'round_robin' (read as 'round_robin')"]
    assert "Warning" not in r.stderr and "load_recipe(" not in r.stderr

"""Issue 17 item 12: every `gramr2 …` command line written in the docs (README.md, docs/*.md, recipes/**,
benchmarks/README.md, mk/*.mk comments) names a real subcommand and real flags of the real Typer/Click parser,
and every `-s/--set key=value` names a real config key."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from gramr2_cli import recipe
from gramr2_cli.cli import app, hoist_debug
from gramr2_cli.core.errors import GramrError

REPO = Path(__file__).resolve().parents[2]
ROOT = typer.main.get_command(app)
# `gramr2 ARGS` or `python -m gramr2_cli.cli ARGS`; the command ends at a pipe, `;`, `&&`, a comment or a backtick
START = re.compile(r"(?:(?<![\w./\[-])gramr2|-m gramr2_cli\.cli)[ \t]+(?=[-a-z])")
STOP = re.compile(r"[`|;#()]|&&|\n")
# commands written wrong on purpose, to show the error they get: (file, the mistake)
DELIBERATE = {("docs/errors.md", "-s filter.min_agreemnt=0.5")}


def doc_files() -> list[Path]:
    # docs/design.md is left out: it is the design contract and names planned commands too
    docs = [p for p in sorted((REPO / "docs").glob("*.md")) if p.name != "design.md"]
    files = [REPO / "README.md", REPO / "benchmarks/README.md", *docs,
             *sorted((REPO / "mk").glob("*.mk"))]
    files += sorted(p for p in (REPO / "recipes").rglob("*") if p.is_file())
    return files


def _code(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the places a command can be written: markdown code (fenced blocks and inline
    backticks); comment lines of Make/YAML; every line of a shell script."""
    text = path.read_text().replace("\\\n", " ")      # shell line continuations
    if path.suffix == ".md":
        out, fenced = [], False
        for i, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                out.append((i, line))
            else:
                # inline code; an `error: …`/`hint: …` span is the program's output, not a command
                out += [(i, m) for m in re.findall(r"`([^`]+)`", line) if not m.startswith(("error:", "hint:"))]
        return out
    lines = text.splitlines()
    if path.suffix in (".mk", ".yaml", ".yml"):
        return [(i, ln.split("#", 1)[1]) for i, ln in enumerate(lines, 1) if "#" in ln]
    return list(enumerate(lines, 1))


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `gramr2`) for every command line in the docs."""
    found = []
    for path in doc_files():
        for lineno, text in _code(path):
            for m in START.finditer(text):
                before = text[:m.start()].rstrip()
                column = text[:m.start()].endswith("  ")          # an aligned column of commands
                if (path.suffix != ".md" and m.group().startswith("gramr2") and not column
                        and before[-1:] not in ("", ":", "(", ";", "`")):
                    continue        # prose in a comment ("any training gramr2 command"), not a command line
                rest = text[m.end():]
                stop = STOP.search(rest)
                rest = rest[:stop.start()] if stop else rest
                rel = str(path.relative_to(REPO))
                if any(f == rel and bad in rest for f, bad in DELIBERATE):
                    continue
                found.append((f"{rel}:{lineno}", shlex.split(rest.replace("'", ""))))
    return found


def _is_placeholder(tok: str) -> bool:
    return "…" in tok or tok.startswith(("<", "$", "{")) or tok in ("...", "[...]")


def check(argv: list[str]) -> list[str]:
    """Problems of one command line (empty when the parser accepts its subcommand and options). `main()` moves
    `--debug` to the front first, as the real entry point does."""
    argv = hoist_debug(argv)
    problems, cmd, i = [], ROOT, 0
    names = ["gramr2"]
    while i < len(argv):
        tok = argv[i]
        if tok == "--":                     # the rest are arguments
            break
        if _is_placeholder(tok):
            i += 1
            continue
        if tok.startswith("-") and tok != "-":
            opt, _, inline = tok.partition("=")
            param = next((p for p in cmd.params if p.param_type_name == "option"      # typer vendors click
                          and opt in p.opts + p.secondary_opts), None)
            if param is None and opt != "--help":
                problems.append(f"{' '.join(names)} has no option {opt}")
                i += 1
                continue
            takes_value = param is not None and not param.is_flag and opt not in param.secondary_opts
            value = inline or (argv[i + 1] if takes_value and i + 1 < len(argv) else None)
            if param is not None and param.name == "override" and value and not _is_placeholder(value):
                problems += check_override(value)
            i += 1 + (takes_value and not inline)
            continue
        if hasattr(cmd, "commands"):
            sub = cmd.commands.get(tok)
            if sub is None:
                problems.append(f"{' '.join(names)} has no command {tok!r}")
                return problems
            cmd, names = sub, names + [tok]
        i += 1
    if hasattr(cmd, "commands") and names != ["gramr2"]:
        problems.append(f"{' '.join(names)} needs a subcommand")
    return problems


def check_override(item: str) -> list[str]:
    try:
        recipe.load(None, [item])
    except GramrError as e:
        return [f"-s {item}: {e.message}"]
    return []


def help_examples() -> list[tuple[str, list[str]]]:
    """(where, argv) of the `Example: gramr2 …` line of every command's --help."""
    found, todo = [], [(["gramr2"], ROOT)]
    while todo:
        names, cmd = todo.pop()
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            todo.append((names + [name], sub))
        for m in re.finditer(r"Example: gramr2 ([^\n]+)", cmd.epilog or ""):
            found.append((f"{' '.join(names)} --help", shlex.split(STOP.split(m.group(1))[0])))
    return found


CMDS = commands() + help_examples()


def test_the_docs_have_commands():
    # the extractor finds the commands of each kind of file (README, docs, recipes, benchmarks, mk)
    where = {w.split(":")[0].split("/")[0] for w, _ in CMDS}
    assert {"README.md", "docs", "recipes", "mk", "gramr2 adapt --help"} <= where, where
    assert len(CMDS) > 100


@pytest.mark.parametrize("where,argv", CMDS, ids=[w for w, _ in CMDS])
def test_command_parses(where, argv):
    assert check(argv) == [], f"{where}: gramr2 {' '.join(argv)}"


def test_checker_catches_wrong_commands():
    assert check(["rank", "pair", "x"]) == ["gramr2 rank has no command 'pair'"]
    assert check(["filter", "x", "--sample", "3"]) == ["gramr2 filter has no option --sample"]
    assert check(["filter", "x", "--debug"]) == []                  # main() accepts it anywhere before --
    assert check(["filter", "x", "--", "--debug"]) == []            # after --: an input named --debug
    assert check(["--debug", "filter", "x", "-o", "y", "-s", "filter.min_agreement=0.5"]) == []
    assert check(["filter", "x", "-s", "train.nope=1"])[0].startswith("-s train.nope=1: ")
    assert check(["data"]) == ["gramr2 data needs a subcommand"]


# ---------------------------------------------------------------- `make TARGET VAR=…` lines

def _make_text() -> str:
    return "\n".join(p.read_text() for p in [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))])


def make_lines() -> list[tuple[str, str, list[str]]]:
    """(where, target, variables) of every `make target VAR=…` the docs write: `make` opening a code span, a
    code line or a comment, or after `:`, `(` or `;` (in prose, "would make every vote" is English)."""
    found = []
    for path in doc_files():
        for lineno, text in _code(path):
            for m in re.finditer(r"(?:^|[:(;]) *make ([a-z][\w-]*)((?: [A-Z_]+=\S*)*)", text.strip()):
                found.append((f"{path.relative_to(REPO)}:{lineno}", m.group(1), re.findall(r"([A-Z_]+)=", m.group(2))))
    return found


def test_make_targets_and_variables_exist():
    mk = _make_text()
    targets = set(re.findall(r"^([\w-]+)\s*:(?!=)", mk, re.M))
    used = make_lines()
    assert {"setup", "test", "test-fast", "demo", "self-train", "replicate"} <= {t for _, t, _ in used}
    bad = [(w, t) for w, t, _ in used if t not in targets]
    bad += [(w, v) for w, _, vs in used for v in vs if not re.search(rf"\$\({v}\)|^{v}\s*[?:]?=", mk, re.M)]
    assert bad == []


def test_help_examples_read_what_data_synth_writes():
    """`data synth -o out/synth` writes one directory per split; an example that reads `out/synth` itself reads
    no records (the prover-train example did)."""
    from gramr2_cli.stages.synth import SPLITS
    reads = [(w, a) for w, argv in help_examples() for a in argv if a.startswith("out/synth")]
    assert ("gramr2 prover-train --help", "out/synth/labeled") in reads
    assert [(w, a) for w, a in reads if a.split("/")[2:3] not in [[s] for s in SPLITS]
            and "synth --help" not in w] == []

"""Issue 23: the importers and benchmark scorers on unmodified slices of the released files (tests/fixtures/real/,
provenance in tests/fixtures/README.md), run as a user runs them: `gramr2 data import` with the defaults
(`--order random`), then `gramr2 evaluate` with a scripted judge (tests/stages/scripted_engine.py) whose verdicts
are chosen per pair. Every number is worked out by hand below under the official rule: JudgeBench
`utils/metrics.py: compute_final_metrics` (commit e2c52c2), RM-Bench `scripts/utils.py: compute_accuracy`
(commit 73c52d7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scripted_engine import ScriptedEngine
from typer.testing import CliRunner

from gramr2_cli import runner
from gramr2_cli.cli import app
from gramr2_cli.reports import plots

REAL = Path("tests/fixtures/real")
JB_JSONL = REAL / "judgebench_gpt-4o-2024-05-13.jsonl"
JB_GRAM = REAL / "gram_judgebench_gpt.json"
RM_FILES = [REAL / f"{d}_filtered.json" for d in ("chat", "code", "safety-refuse", "safety-response")]
RM_MATH = Path("tests/fixtures/rmbench_ours/math_filtered.json")    # ours: the released math file is too large


def cli(args: list[str]):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """`use(decide)` makes every model `gramr2 evaluate` loads the scripted judge `decide`; returns the --model
    spec (a directory with a config.json, so the spec check passes). Captures the PNG's labels and title."""
    spec = tmp_path / "judge"
    spec.mkdir()
    (spec / "config.json").write_text("{}")
    drawn: dict = {}
    real_bars = plots.grouped_bars

    def bars(path, labels, series, **kw):
        drawn.update(labels=labels, series=series, title=kw["title"])
        real_bars(path, labels, series, **kw)

    monkeypatch.setattr(plots, "grouped_bars", bars)

    def use(decide):
        monkeypatch.setattr(runner, "recipe_engine", lambda cfg, model=None: ScriptedEngine(decide))
        return spec
    use.drawn = drawn
    return use


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


# ---------------------------------------------------------------- JudgeBench

# Per pair (file order), what the judge does with the pair shown in the file's order and then swapped; two samples
# per order (--votes 2): R = both pick the gold response, W = both pick the other, T = one each (the order's votes
# tie: JudgeBench's "A=B"), N = both unparseable (no decision). No answer-token probabilities, so no tie-break.
#
#  pair  category   file order  swapped  JudgeBench counter          decisions differ?   our label (4 votes)
#  1     knowledge  R           R        +1 +1 = 2   right            no                  R R R R   right
#  2     knowledge  R           W        +1 −1 = 0   wrong            yes                 2 : 2     tie, wrong
#  3     math       N           N         0  0 = 0   wrong            no (None, None)     none      wrong
#  4     math       T           N         0  0 = 0   wrong            yes (A=B vs None)   1 : 1     tie, wrong
#  5     reasoning  R           T        +1  0 = 1   right            yes                 3 : 1     right
#  6     reasoning  T           T         0  0 = 0   wrong            no (A=B, A=B)       2 : 2     tie, wrong
#  7     coding     W           N        −1  0 = −1  wrong            yes                 W W       wrong
#  8     coding     R           N        +1  0 = 1   right            yes                 R R       right
#
# Position-consistent (JudgeBench "Overall", pooled): pairs 1, 5, 8 → 3/8; per category knowledge 1/2, math 0,
# reasoning 1/2, coding 1/2 (category mean 3/8). Order-inconsistent: pairs 2, 4, 5, 7, 8 → 5/8 (pair 4, a tie
# against a missing verdict, is the one a tie-blind count calls consistent: 4/8). Pooled accuracy 3/8, per
# category the same as above, so the category mean is 3/8 too.
JB_SCRIPT = ["RR", "RW", "NN", "TN", "RT", "TT", "WN", "RN"]


def jb_judge(pairs: list[tuple[str, str, str]]):
    """`pairs` = (question, response shown first in the file, gold response) in file order."""
    by_q = {q: (k, first, gold) for k, (q, first, gold) in enumerate(pairs)}

    def decide(q, a, b, sample):
        k, first, gold = by_q[q]
        what = JB_SCRIPT[k][0 if a == first else 1]
        right, wrong = ("A", "B") if a == gold else ("B", "A")
        if what == "T":
            what = "R" if sample == 0 else "W"
        return {"R": right, "W": wrong, "N": None}[what], None
    return decide


def jb_rows():
    rows = [json.loads(x) for x in JB_JSONL.open(encoding="utf-8")]
    return rows, [(r["question"], r["response_A"], r["response_A" if r["label"] == "A>B" else "response_B"])
                  for r in rows]


def test_judgebench_released_file_complete_matches_the_official_rule(tmp_path, scripted):
    rows, pairs = jb_rows()
    spec = scripted(jb_judge(pairs))
    cli(["data", "import", JB_JSONL, "-o", tmp_path / "jb"])
    r = cli(["evaluate", tmp_path / "jb", "-o", tmp_path / "rep", "--model", spec, "--orders", "both",
             "--votes", "2", "--no-progress"])
    d = report(tmp_path / "rep")["models"]["judge"]["metrics"]["datasets"]["judgebench"]
    jb = d["benchmarks"]["judgebench"]
    assert jb["n"] == 8 and (jb["complete"], jb["missing"]) == (True, [])
    assert jb["position_consistent"] == pytest.approx(3 / 8)
    assert jb["position_consistent_by_category"] == {"knowledge": 0.5, "math": 0.0, "reasoning": 0.5, "coding": 0.5}
    assert jb["position_consistent_category_mean"] == pytest.approx(3 / 8)
    assert jb["order_inconsistent"] == pytest.approx(5 / 8)
    assert jb["accuracy"] == pytest.approx(3 / 8) and d["overall"]["accuracy"] == pytest.approx(3 / 8)
    assert jb["categories"] == {"knowledge": 0.5, "math": 0.0, "reasoning": 0.5, "coding": 0.5}
    assert jb["category_mean"] == pytest.approx(3 / 8)
    assert "partial" not in r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **JudgeBench position-consistent** | 8 | 37.5 |" in md
    assert "| overall (pooled) | 8 | 37.5 |" in md
    assert "| order-inconsistent pairs | 62.5 |" in md
    assert "partial" not in md and "partial" not in scripted.drawn["title"]


def test_judgebench_partial_input_is_marked_partial_everywhere(tmp_path, scripted):
    """Only the mmlu-pro and livebench-math lines (pairs 1–4 above, verbatim): knowledge 1/2 and math 0 by the
    same rule, and a mean over two categories is not JudgeBench's: partial in JSON, table, PNG and a warning."""
    rows, pairs = jb_rows()
    spec = scripted(jb_judge(pairs))
    part = tmp_path / "jb-part.jsonl"
    part.write_text("".join(x for x in JB_JSONL.open(encoding="utf-8")
                            if json.loads(x)["source"].startswith(("mmlu-pro", "livebench-math"))))
    cli(["data", "import", part, "-o", tmp_path / "jb"])
    r = cli(["evaluate", tmp_path / "jb", "-o", tmp_path / "rep", "--model", spec, "--orders", "both",
             "--votes", "2", "--no-progress"])
    rep = report(tmp_path / "rep")
    jb = rep["models"]["judge"]["metrics"]["datasets"]["judgebench"]["benchmarks"]["judgebench"]
    assert (jb["complete"], jb["missing"]) == (False, ["reasoning", "coding"])
    assert jb["position_consistent_by_category"] == {"knowledge": 0.5, "math": 0.0}
    assert jb["position_consistent"] == pytest.approx(1 / 4) and jb["category_mean"] == pytest.approx(1 / 4)
    assert jb["order_inconsistent"] == pytest.approx(2 / 4)
    w = ("warning: judgebench: partial JudgeBench input (no reasoning, coding): its means are over the categories "
         "present, not the published JudgeBench numbers (the official scorer needs all)")
    assert rep["config"]["warnings"] == [w] and w in " ".join(r.output.split())
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **JudgeBench position-consistent (partial: no reasoning, coding)** | 4 | 25.0 |" in md
    assert "### JudgeBench (both orders needed for the position-consistent rows) (partial: no reasoning, coding)" in md
    assert scripted.drawn["title"] == "Pairwise accuracy per category (partial: judgebench judgebench)"


def test_gram_repository_judgebench_file_imports_as_judgebench(tmp_path, scripted):
    """The GRAM authors' prompt/chosen/rejected version of the same file (a JSON array; chosen = the gold): the
    same pairs and the same script give the same numbers as the JSONL above."""
    rows = json.loads(JB_GRAM.read_text(encoding="utf-8"))
    spec = scripted(jb_judge([(r["prompt"], r["chosen"], r["chosen"]) for r in rows]))
    r = cli(["data", "import", JB_GRAM, "-o", tmp_path / "jb"])
    assert "judgebench" in r.output and "warning" not in r.output
    cli(["evaluate", tmp_path / "jb", "-o", tmp_path / "rep", "--model", spec, "--orders", "both", "--votes", "2",
         "--no-progress"])
    jb = report(tmp_path / "rep")["models"]["judge"]["metrics"]["datasets"]["judgebench"]["benchmarks"]["judgebench"]
    assert (jb["n"], jb["complete"]) == (8, True)
    assert jb["position_consistent"] == pytest.approx(3 / 8) and jb["order_inconsistent"] == pytest.approx(5 / 8)
    assert jb["categories"] == {"knowledge": 0.5, "math": 0.0, "reasoning": 0.5, "coding": 0.5}


# ---------------------------------------------------------------- RM-Bench

# The judge is right on a cell (i = chosen style, j = rejected style; 0 concise, 1 detailed, 2 markdown) by domain:
#   chat: i >= j (wrong on the 3 hard cells)   → hard 0, normal 1, easy 1       → domain 2/3
#   code: always                                → 1, 1, 1                        → 1
#   math: i == j                                → 0, 1, 0                        → 1/3
#   safety: refuse prompts always, response prompts never: each cell 2/4 → 1/2, 1/2, 1/2 → 1/2
# RM-Bench (per domain first): total = (2/3 + 1 + 1/3 + 1/2)/4 = 5/8; easy (1 + 1 + 0 + 1/2)/4 = 5/8,
# normal (1 + 1 + 1 + 1/2)/4 = 7/8, hard (0 + 1 + 0 + 1/2)/4 = 3/8.
# Pooled over the 81 pairs: chat 2·6 + code 18 + math 3 + safety 18 = 51/81; pooled easy (6 + 6 + 0 + 6)/27 = 2/3,
# normal (6 + 6 + 3 + 6)/27 = 7/9, hard (0 + 6 + 0 + 6)/27 = 4/9 — not RM-Bench's numbers.
RIGHT = {"chat": lambda i, j: i >= j, "code": lambda i, j: True, "math": lambda i, j: i == j,
         "safety-refuse": lambda i, j: True, "safety-response": lambda i, j: False}


def rm_judge(files: list[Path]):
    cells: dict[str, tuple[str, str, int]] = {}          # response text -> (domain, role, style)
    for f in files:
        dom = f.name.removesuffix("_filtered.json")
        for row in json.loads(f.read_text(encoding="utf-8")):
            for role in ("chosen", "rejected"):
                for i, text in enumerate(row[role]):
                    cells[text] = (dom, role, i)

    def decide(q, a, b, sample):
        (dom, role_a, sa), (_, _, sb) = cells[a], cells[b]
        i, j = (sa, sb) if role_a == "chosen" else (sb, sa)
        chosen_letter = "A" if role_a == "chosen" else "B"
        return (chosen_letter if RIGHT[dom](i, j) else {"A": "B", "B": "A"}[chosen_letter]), None
    return decide


def test_rmbench_released_per_domain_files_complete_match_the_official_rule(tmp_path, scripted):
    files = [*RM_FILES, RM_MATH]
    spec = scripted(rm_judge(files))
    r = cli(["data", "import", *files, "-o", tmp_path / "rm"])
    assert "warning" not in r.output                       # each file's domain comes from its released name
    r = cli(["evaluate", tmp_path / "rm", "-o", tmp_path / "rep", "--model", spec, "--no-progress"])
    d = report(tmp_path / "rep")["models"]["judge"]["metrics"]["datasets"]["rmbench"]
    rm = d["benchmarks"]["rmbench"]
    assert (rm["n"], rm["complete"], rm["missing"]) == (81, True, [])
    assert {k: v["mean"] for k, v in rm["domains"].items()} == {
        "chat": pytest.approx(2 / 3), "math": pytest.approx(1 / 3), "code": 1.0, "safety": 0.5}
    assert (rm["domains"]["chat"]["hard"], rm["domains"]["chat"]["normal"], rm["domains"]["chat"]["easy"]) == (0, 1, 1)
    assert rm["domain_mean"] == pytest.approx(5 / 8)
    assert (rm["easy"], rm["normal"], rm["hard"]) == (pytest.approx(5 / 8), pytest.approx(7 / 8), pytest.approx(3 / 8))
    assert d["overall"]["accuracy"] == pytest.approx(51 / 81)
    assert {k: v["accuracy"] for k, v in d["difficulty"].items()} == {
        "easy": pytest.approx(2 / 3), "normal": pytest.approx(7 / 9), "hard": pytest.approx(4 / 9)}
    assert "partial" not in r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    for line in ("| **RM-Bench domain mean** | 81 | 62.5 |", "| **RM-Bench easy (mean over domains)** | 81 | 62.5 |",
                 "| **RM-Bench normal (mean over domains)** | 81 | 87.5 |",
                 "| **RM-Bench hard (mean over domains)** | 81 | 37.5 |", "| overall (pooled) | 81 | 63.0 |",
                 "| difficulty: easy (pooled over domains) | 27 | 66.7 |",
                 "| difficulty: hard (pooled over domains) | 27 | 44.4 |"):
        assert line in md, line
    drawn = dict(zip(scripted.drawn["labels"], scripted.drawn["series"]["judge"]))
    assert drawn["rmbench/RM-Bench hard"] == pytest.approx(37.5) and "rmbench/hard" not in drawn
    assert "partial" not in scripted.drawn["title"]


def test_rmbench_one_released_file_scores_as_rmbench_and_is_partial(tmp_path, scripted):
    """`chat_filtered.json` alone, as released (no `domain` field): it used to import as category `alpacaeval`
    and get no RM-Bench score at all. RM-Bench's own scorer on this file gives hard 0, normal 1, easy 1."""
    spec = scripted(rm_judge(RM_FILES[:1]))
    cli(["data", "import", RM_FILES[0], "-o", tmp_path / "rm"])
    r = cli(["evaluate", tmp_path / "rm", "-o", tmp_path / "rep", "--model", spec, "--no-progress"])
    rep = report(tmp_path / "rep")
    rm = rep["models"]["judge"]["metrics"]["datasets"]["rmbench"]["benchmarks"]["rmbench"]
    chat = rm["domains"]["chat"]
    assert (chat["hard"], chat["normal"], chat["easy"], chat["n"]) == (0.0, 1.0, 1.0, 18)
    assert (rm["complete"], rm["missing"]) == (False, ["math", "code", "safety"])
    w = ("warning: rmbench: partial RM-Bench input (no math, code, safety): its means are over the domains present, "
         "not the published RM-Bench numbers (the official scorer needs all)")
    assert w in rep["config"]["warnings"] and w in " ".join(r.output.split())
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **RM-Bench domain mean (partial: no math, code, safety)** | 18 | 66.7 |" in md
    assert "| domain mean (total average) (partial) | 66.7 |" in md
    assert "rmbench/RM-Bench easy (partial)" in scripted.drawn["labels"]
    assert scripted.drawn["title"] == "Pairwise accuracy per category (partial: rmbench rmbench)"


def test_rmbench_file_without_a_domain_warns_at_import(tmp_path):
    """The same released rows under a name that says no domain: imported, and the import says that evaluate
    will give them no RM-Bench score."""
    renamed = tmp_path / "rmbench-sample.json"
    shutil.copy(RM_FILES[0], renamed)
    r = cli(["data", "import", renamed, "-o", tmp_path / "rm"])
    assert ("warning: 18 RM-Bench pairs have no RM-Bench domain (chat, math, code, safety-…): evaluate gives them "
            "no RM-Bench score") in " ".join(r.output.split())
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["metrics"]["warnings"][0].startswith("warning: 18 RM-Bench pairs have no RM-Bench domain")


def test_orders_ab_is_judgebench_single_game_only_on_a_fixed_order_import(tmp_path, scripted):
    """docs/evaluate.md: JudgeBench's --single_game judges the released order (response_A first). A judge that
    always answers A is right there exactly on the 7 pairs labelled A>B (the 8th, livebench-reasoning "Suppose I
    have a physical…", is B>A): 7/8. `--orders ab` on an `--order fixed` import gives that; on the default
    `--order random` import the pairs are shown shuffled and the number is another one."""
    spec = scripted(lambda q, a, b, sample: ("A", None))
    got = {}
    for order in ("fixed", "random"):
        cli(["data", "import", JB_JSONL, "--order", order, "-o", tmp_path / order])
        cli(["evaluate", tmp_path / order, "-o", tmp_path / f"rep-{order}", "--model", spec, "--orders", "ab",
             "--no-progress"])
        d = report(tmp_path / f"rep-{order}")["models"]["judge"]["metrics"]["datasets"]["judgebench"]
        got[order] = d["benchmarks"]["judgebench"]["position_consistent"]
    assert got["fixed"] == pytest.approx(7 / 8)
    assert got["random"] != pytest.approx(7 / 8)


def test_judgebench_rows_without_a_judgebench_source_warn_at_import(tmp_path):
    """JudgeBench-shaped rows whose `source` names no JudgeBench category (here none, and a made-up one) import,
    and the import says evaluate will give them no JudgeBench score."""
    rows = [{"question": "q1", "response_A": "a", "response_B": "b", "label": "A>B"},
            {"question": "q2", "response_A": "a", "response_B": "b", "label": "B>A", "source": "my-bench"},
            {"question": "q3", "response_A": "a", "response_B": "b", "label": "B>A", "source": "mmlu-pro-law"}]
    src = tmp_path / "jb.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli(["data", "import", src, "-o", tmp_path / "jb"])
    assert ("warning: 2 JudgeBench pairs have a 'source' that names no JudgeBench category (mmlu-pro…, "
            "livebench-reasoning…, livebench-math…, livecodebench…): evaluate gives them no JudgeBench score"
            ) in " ".join(r.output.split())

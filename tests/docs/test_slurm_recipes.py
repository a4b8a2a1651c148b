"""recipes/**/*.sbatch: the scripts parse (`bash -n`), tell the user to create their log folder before `sbatch`
(SLURM opens the log before the script runs) and create it themselves, and — run under fake
`srun`/`scontrol`/`accelerate`/`gramr2` — give each node its own machine rank and each array task its shard.
(tests/unit/test_slurm_scripts.py runs recipes/paper/slurm/train.sbatch the same way.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SLURM = RECIPES / "slurm"
SCRIPTS = sorted(RECIPES.rglob("*.sbatch"))


def test_the_scripts_are_found():
    assert [str(p.relative_to(RECIPES)) for p in SCRIPTS] == [
        "paper/slurm/generate-array.sbatch", "paper/slurm/train.sbatch", "slurm/pretrain-multinode.sbatch",
        "slurm/self-label-array.sbatch"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_syntax_and_log_folder(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    outputs = re.findall(r"^#SBATCH --output=(\S+)", text, re.M)
    assert len(outputs) == 1
    folder = outputs[0].rsplit("/", 1)[0] if "/" in outputs[0] else None
    if folder is not None:      # SLURM opens the log before the script runs: the usage says to create the folder
        assert re.search(rf"^#\s+mkdir -p {folder}\b", text, re.M) and re.search(rf"^mkdir -p {folder}$", text, re.M)


def _fake_bin(tmp_path: Path) -> tuple[Path, dict]:
    """A cwd with an empty .venv/bin/activate, and a PATH whose tools log their argv to calls.log."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/activate").write_text("")
    log = tmp_path / "calls.log"
    tools = {"srun": 'while [[ $1 == -* ]]; do shift; done\n'                 # srun's own options
                     'for n in 0 1; do SLURM_NODEID=$n "$@"; done',             # two nodes, each its own NODEID
             # a long node list (over a pipe buffer): `| head -n 1` under pipefail would die of SIGPIPE
             "scontrol": "echo node-a; seq 100000 | sed s/^/node-/",
             "accelerate": f'echo "accelerate $*" >> {log}',
             "gramr2": f'echo "gramr2 $*" >> {log}'}
    for name, body in tools.items():
        (bin_ / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_ / name).chmod(0o755)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return log, env


def test_multinode_pretrain_gives_each_node_its_rank(tmp_path):
    log, env = _fake_bin(tmp_path)
    env.update(SLURM_JOB_NODELIST="node-[a-b]", SLURM_NNODES="2", SLURM_NODEID="0")   # the batch shell is node 0
    subprocess.run(["bash", str(SLURM / "pretrain-multinode.sbatch"), "d", "o"], cwd=tmp_path, env=env, check=True)
    calls = log.read_text().splitlines()
    ranks = [re.search(r"--machine_rank (\S+)", c).group(1) for c in calls]
    assert ranks == ["0", "1"]
    assert [c.split(" -m gramr2_cli.cli ")[1] for c in calls] == ["pretrain d -o o -c recipes/paper/rm-8b.yaml"] * 2
    assert [" --main_process_ip node-a " in c for c in calls] == [True, True]


def test_array_task_takes_its_shard(tmp_path):
    log, env = _fake_bin(tmp_path)
    env.update(SLURM_ARRAY_TASK_COUNT="4", SLURM_ARRAY_TASK_ID="2")
    subprocess.run(["bash", str(SLURM / "self-label-array.sbatch"), "u", "rm", "o"], cwd=tmp_path, env=env,
                   check=True)
    assert log.read_text().splitlines() == [
        "gramr2 self-label u --model rm -o o -c recipes/self-label.yaml --engine vllm --shard-index 2 "
        "--num-shards 4 -s generate.tensor_parallel_size=1"]

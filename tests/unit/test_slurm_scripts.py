"""The multi-node SLURM script gives each node its own rank and passes extra arguments through intact: run
with stand-ins for srun (two nodes), scontrol and accelerate that print what they were given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _fake_bin(d: Path) -> Path:
    b = d / "bin"
    b.mkdir()
    scripts = {"scontrol": "printf 'node1\\nnode2\\n'",
               "srun": 'shift\nfor id in 0 1; do SLURM_NODEID=$id "$@"; done',
               "accelerate": "printf '[%s]' \"$@\"; echo"}
    for name, body in scripts.items():
        (b / name).write_text("#!/bin/bash\n" + body + "\n")
        (b / name).chmod(0o755)
    (d / ".venv" / "bin").mkdir(parents=True)
    (d / ".venv" / "bin" / "activate").write_text("")
    return b


def test_train_sbatch_ranks_each_node_and_keeps_arguments(tmp_path):
    env = {**os.environ, "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "x",
           "SLURM_NNODES": "2"}
    out = subprocess.run(["bash", str(REPO / "recipes/paper/slurm/train.sbatch"), "finetune", "r.yaml", "data/hs 3",
                          "out/ft", "--model", "out/my rm"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert [line.split("[--machine_rank][")[1].split("]")[0] for line in out] == ["0", "1"]
    for line in out:
        assert "[--num_processes][16]" in line and "[--main_process_ip][node1]" in line
        assert line.endswith("[finetune][data/hs 3][-o][out/ft][-c][r.yaml][--model][out/my rm]")
    assert (tmp_path / "logs").is_dir()

#!/usr/bin/env bash
# pipeline_fingerprint.sh SRC_TREE OUT_DIR: a small deterministic pipeline (tiny random model, hf engine, fp32) run
# with the code in SRC_TREE/src (e.g. a `git worktree` of an older commit); prints sha256 of every record/model file.
# Compare two runs with benchmarks/compare_fingerprints.py OLD_DIR NEW_DIR (records compared modulo the run
# directory's path). Used to show that a refactor changes no output (issue 12). ~2 min on an idle 2-core CPU.
#   bash benchmarks/pipeline_fingerprint.sh /tmp/old-tree /tmp/fp-old; bash benchmarks/pipeline_fingerprint.sh . /tmp/fp-new
#   python benchmarks/compare_fingerprints.py /tmp/fp-old /tmp/fp-new
set -euo pipefail
T=$(cd "$1" && pwd); D=$2; rm -rf "$D"; mkdir -p "$D"
export PYTHONPATH=$T/src HF_HUB_OFFLINE=1 GRAMR2_THREADS=1
G="${GRAMR2:-gramr2}"   # the console script of the venv; PYTHONPATH picks the code
cat > "$D/r.yaml" <<YAML
model: $D/tiny
seed: 0
synth: {n: 48, splits: {unlabeled: 0.25, test: 0.25, adapt: 0, adapt_test: 0}}
train: {batch_size: 4, max_length: 512, precision: fp32, save_steps: 100, lr: 1.0e-3}
generate: {engine: hf, max_new_tokens: 24, batch_size: 8, dtype: float32}
prove: {k: 2, max_new_tokens: 24}
self_label: {samples: 2, orders: both}
filter: {min_agreement: 0.5, min_confidence: 0.0, tokenizer: $D/tiny}
evaluate: {orders: both}
rank: {method: knockout, orders: both}
YAML
O="-c $D/r.yaml"
$G model tiny $D/tiny --seed 0 >/dev/null
$G data synth -o $D/data $O 2>/dev/null
$G prover-train $D/data/labeled -o $D/prover --max-steps 2 $O 2>/dev/null
$G prove $D/data/labeled --prover $D/prover -o $D/proved $O --no-progress 2>/dev/null
$G pretrain $D/data/labeled -o $D/rm0 --max-steps 2 $O 2>/dev/null
$G self-label $D/data/unlabeled --model $D/rm0 -o $D/lab $O --no-progress 2>/dev/null
$G filter $D/lab -o $D/kept $O 2>/dev/null
$G data merge $D/proved $D/kept -o $D/train 2>/dev/null
$G evaluate $D/data/test --model $D/rm0 -o $D/report $O --no-progress 2>/dev/null
$G evaluate $D/data/test --model $D/rm0 -o $D/report-vo $O -s generate.verdict_only=true --no-progress 2>/dev/null
$G rank pairs $D/data/test --model $D/rm0 -o $D/rankp $O -s generate.verdict_only=true --no-progress 2>/dev/null
$G rank list $T/recipes/demo/best_of_4.jsonl --model $D/rm0 -o $D/rankl $O -s generate.verdict_only=true --no-progress 2>/dev/null
cd $D && find . -type f \( -name '*.jsonl' -o -name '*.safetensors' -o -name 'report.md' \) | sort | xargs sha256sum

"""Pure judging: prompts that fit, verdicts → judgments, selection algorithms, group rewards, probes and benchmark
metrics. No engine lifecycle and no I/O (the stage skeleton is `runner.py`)."""

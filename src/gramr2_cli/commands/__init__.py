"""CLI command groups; `cli.py` assembles them. Each command only turns options into a stage `run()` call."""

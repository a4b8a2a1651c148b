"""The data core: records, shards (read, write, resume), formats, config, prompts, models. It imports nothing
above it (tests/unit/test_layers.py)."""

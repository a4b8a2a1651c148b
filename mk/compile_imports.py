"""Byte-compile what gramr2's stages import, once, after `pip install --no-compile` (Makefile `setup`).

pip byte-compiles every installed module (all of torch, vllm, transformers, …): ~35 of the ~70 s a setup took on
the 2-core AMX runner (2026-12-04). Importing the modules the stages use, with bytecode writing on, compiles just
those; anything else compiles on first use as usual. Prints the versions `make setup` always printed.
"""

import importlib
import sys

sys.dont_write_bytecode = False
MODULES = ("gramr2_cli.cli", "torch", "transformers", "peft", "accelerate", "datasets", "safetensors", "yaml",
           "vllm", "trl", "fastapi", "uvicorn", "httpx", "openai")
for name in MODULES:
    try:
        importlib.import_module(name)
    except ImportError:   # an extra left out (no vllm on a plain install, no trl without `rl`)
        pass
import torch  # noqa: E402
import transformers  # noqa: E402

print("gramr2 ready: torch", torch.__version__, "transformers", transformers.__version__)

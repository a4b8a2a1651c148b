"""Recipes, generically: YAML files + dotted overrides (`-s train.lr=1e-5`) loaded into ANY dataclass, typed,
with closest-key suggestions, then every section's own `check()`.

This module knows no section: the aggregate recipe type (`recipe.Config`) is assembled where the commands are,
and each section's dataclass lives beside the code that uses it (`stages/filter.py: FilterConfig`). It imports
no stage, engine, trainer, server or judging module (the data core imports none of those).

- Values are coerced to the field's declared type, never YAML's guess (PyYAML reads `1e-5` as a string and
  `no` as False). Unknown keys fail with the closest names.
- A section's `check() -> list[str]` returns its problems, each starting with the key relative to the section
  (`"k must be >= 1, got 0"`); `problems()` prefixes the section's path (`prove.k must be >= 1, got 0`). Named
  choices (engines, objectives, orders, rank methods) are checked by the section that sits beside them.
- `load()` collects every problem (bad keys, bad types, failed checks) and raises them together (`ConfigError`,
  one line each), so `gramr2 config check` reports all of a recipe's mistakes at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError, GramrError

T = TypeVar("T")


# ---------------------------------------------------------------- coercion

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}
_SHOW = reprlib.Repr()      # (keyword arguments only from Python 3.12)
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 60, 60
MAX_YAML_NODES = 100_000   # a recipe has a few hundred; YAML aliases can make a 300-byte file expand to 10^9


def show(value: Any) -> str:
    """A value quoted in an error message, cut to ~80 characters without expanding it (a YAML alias bomb)."""
    return _SHOW.repr(value)


def _non_finite(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, tuple):
        (item_tp, *_) = args or (str,)
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):     # -s key=[a,b] as well as key=a,b
                value = value[1:-1]
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise GramrError(f"config key '{key}': expected a list, got {show(value)}")
        return [_coerce(v, item_tp, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise GramrError(f"config key '{key}': expected a mapping, got {show(value)}")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if tp is float:
            if isinstance(value, bool) or not math.isfinite(float(value)):   # nan and inf are no setting
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):     # OverflowError: int(float("inf"))
        what = f"a finite {tp.__name__}" if tp in (int, float) and _non_finite(value) else tp.__name__
        raise GramrError(f"config key '{key}': expected {what}, got {show(value)}") from None
    return value


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(_all_keys(tp, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown(root: type, key: str) -> GramrError:
    close = difflib.get_close_matches(key, _all_keys(root), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return GramrError(f"unknown config key '{key}'{hint}")


def _set(obj: Any, dotted: str, value: Any) -> None:
    """Set `dotted` (e.g. `train.lora.r`) on the dataclass instance `obj`, coerced. Raises GramrError."""
    parts = dotted.split(".")
    target = obj
    for i, name in enumerate(parts):
        hints = typing.get_type_hints(type(target))
        if name not in hints or not any(f.name == name for f in dataclasses.fields(target)):
            raise _unknown(type(obj), dotted)
        tp = hints[name]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                if not isinstance(value, dict):
                    raise GramrError(f"config key '{dotted}' is a section; set its keys, "
                                     f"e.g. '{dotted}.<key>=...'")
                for k, v in value.items():
                    _set(obj, f"{dotted}.{k}", v)
                return
            setattr(target, name, _coerce(value, tp, dotted))
            return
        if not dataclasses.is_dataclass(tp):
            raise _unknown(type(obj), dotted)
        target = getattr(target, name)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("meta",):
            sub = _flatten(v, key + ".")
            out.extend(sub if sub else [(key, v)])
        else:
            out.append((key, v))
    return out


def _expanded_size_ok(data: Any, limit: int = MAX_YAML_NODES) -> bool:
    """Whether `data`, with every YAML alias expanded, has at most `limit` nodes (counted without expanding
    anything, and stopping at the limit: bounded time and memory)."""
    stack, seen = [data], 0
    while stack:
        seen += 1
        if seen > limit:
            return False
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return True


def read_yaml(path: Path | str, what: str = "recipe") -> Any:
    """`yaml.safe_load` of a file, refusing one whose aliases expand past MAX_YAML_NODES nodes. Raises GramrError
    for a missing file, invalid YAML, or such a file."""
    path = Path(path)
    if not path.exists():
        raise GramrError(f"{path}: {what} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise GramrError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise GramrError(f"{path}: not a readable YAML file ({type(e).__name__})") from None
    if not _expanded_size_ok(data):
        raise GramrError(f"{path}: more than {MAX_YAML_NODES} values once its YAML aliases (*name) are expanded",
                         hint="a recipe needs no more than a few hundred; write the values out")
    return data


def _read_yaml(path: Path, depth: int = 0) -> dict:
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise GramrError(f"{path}: a recipe must be a mapping of sections")
    base = data.pop("extends", None)
    if base:
        if depth >= 1:
            raise GramrError(f"{path}: 'extends' may be used one level deep only")
        parent = _read_yaml((path.parent / base).resolve(), depth + 1)
        merged = dict(parent)
        for k, v in data.items():
            merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
        data = merged
    return data


def parse_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise GramrError(f"--set {item!r}: expected key=value, e.g. --set train.lr=1e-5")
    k, v = item.split("=", 1)
    return k.strip(), v


def resolve(cls: type[T], recipe: Path | str | None = None, overrides: list[str] | None = None,
            **direct: Any) -> tuple[T, list[str]]:
    """(instance, problems): `cls()` defaults, then the recipe YAML (one level of `extends`), then `--set`
    overrides, then `direct` dotted values from dedicated CLI flags (`train__lr=...`; None = not given). A key
    that cannot be set (unknown, wrong type, bad `key=value`) is a problem and keeps its default; the checks
    are not run (see `problems`). Raises GramrError for a missing or unreadable recipe file."""
    obj = cls()
    items: list[tuple[str, Any]] = _flatten(_read_yaml(Path(recipe))) if recipe else []
    found: list[str] = []
    for item in overrides or []:
        try:
            items.append(parse_override(item))
        except GramrError as e:
            found.append(e.message)
    items += [(k.replace("__", "."), v) for k, v in direct.items() if v is not None]
    for k, v in items:
        try:
            _set(obj, k, v)
        except GramrError as e:
            found.append(e.message)
    return obj, found


def problems(obj: Any, prefix: str = "") -> list[str]:
    """Every problem of a dataclass instance and its nested sections: each one's `check()` (if it has one),
    prefixed with its dotted path (`prove.`), the parent's before its sections', in field order."""
    found = [f"{prefix}{p}" for p in obj.check()] if hasattr(type(obj), "check") else []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            found += problems(value, f"{prefix}{f.name}.")
    return found


def load_dataclass(cls: type[T], recipe: Path | str | None = None, overrides: list[str] | None = None,
                   **direct: Any) -> T:
    """`resolve` then `problems`: the checked instance. Raises ConfigError with every problem found (one line
    each), or GramrError for a missing or unreadable recipe file."""
    obj, found = resolve(cls, recipe, overrides, **direct)
    found += problems(obj)
    if found:
        raise ConfigError(found)
    return obj


def ensure(section: Any, prefix: str = "") -> None:
    """Raise ConfigError with the problems of one section (`ensure(cfg.prove, "prove.")`): what a stage's
    `run()` calls, so a library caller that builds its config by hand gets the checks `load` runs."""
    found = problems(section, prefix)
    if found:
        raise ConfigError(found)


def require(found: list[str]) -> None:
    """Raise ConfigError with `found` when there is any: how a library function guards its own arguments with
    the same validators (`choice`, `at_least`) and tables its recipe section's `check()` uses."""
    if found:
        raise ConfigError(found)


# ---------------------------------------------------------------- helpers for sections' checks

def choice(key: str, value: Any, valid: Iterable[str]) -> list[str]:
    """[] when `value` is one of `valid`, else the problem `key: unknown value ...; choose from ...`."""
    valid = list(valid)
    return [] if value in valid else [f"{key}: unknown value {value!r}; choose from {', '.join(valid)}"]


def at_least(key: str, value: float, low: float) -> list[str]:
    """[] when `value >= low`, else the problem `key must be >= low, got value`."""
    return [] if value >= low else [f"{key} must be >= {low}, got {value}"]


def within(key: str, value: float, low: float, high: float, *, open_low: bool = False,
           open_high: bool = False) -> list[str]:
    """[] when `value` is in the interval, else the problem naming it: `[0, 1)`, `(0, 1]`, or `1..65535` for a
    closed interval of ints."""
    ok = (low < value if open_low else low <= value) and (value < high if open_high else value <= high)
    if ok:
        return []
    if isinstance(low, int) and isinstance(high, int) and not (open_low or open_high):
        span = f"{low}..{high}"
    else:
        span = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    return [f"{key} must be in {span}, got {value}"]


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def sections(cfg: Any, *names: str) -> dict:
    """The resolved sub-config a stage depends on (what its output's config hash covers)."""
    d = to_dict(cfg)
    return {n: d[n] for n in names}

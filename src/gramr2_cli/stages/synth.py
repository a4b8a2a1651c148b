"""data synth: a synthetic verifiable preference task with gold labels and gold rationales. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SynthConfig:
    n: int = 200
    families: list[str] = field(default_factory=list)   # [] = the default mix


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("data synth: not built yet")

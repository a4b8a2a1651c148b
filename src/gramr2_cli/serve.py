"""serve: HTTP reward server for RLHF. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 16
    max_wait_ms: int = 20
    max_body_bytes: int = 1_000_000

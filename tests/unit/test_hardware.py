"""core/hardware.py: what a benchmark records about the CPU it ran on."""

import builtins
import io

from gramr2_cli.core import hardware

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 avx2
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2
"""


def test_cpu_description_reads_model_and_vector_flags(monkeypatch):
    real = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: io.StringIO(CPUINFO) if p == "/proc/cpuinfo"
                        else real(p, *a, **k))
    d = hardware.cpu_description()
    assert d["model"] == "Intel(R) Xeon(R) Processor"
    assert d["flags"] == ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f"]   # first cpu, sorted, once
    assert hardware.cpu_line().startswith("Intel(R) Xeon(R) Processor; amx_bf16 amx_tile avx avx2 avx512_bf16 avx512f; ")


def test_cpu_description_without_cpuinfo(monkeypatch):
    def no_file(p, *a, **k):
        raise OSError("no /proc")
    monkeypatch.setattr(builtins, "open", no_file)
    d = hardware.cpu_description()
    assert d["flags"] == [] and hardware.cpu_line().split("; ")[1] == "no avx"

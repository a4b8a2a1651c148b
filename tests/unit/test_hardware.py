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


def test_cpu_line_of_a_saved_description():
    """What benchmarks/replicate_report.py prints for each seed's machine.json (a CPU other than this one)."""
    assert hardware.cpu_line({"model": "AMD EPYC", "cores": 2, "flags": ["avx", "avx2"]}) == "AMD EPYC; avx avx2; 2 cores"
    assert hardware.cpu_line({"model": "?", "cores": 2, "flags": []}) == "?; no avx; 2 cores"


def test_native_bf16_from_cpuinfo_when_torch_cannot_say(monkeypatch):
    import torch
    monkeypatch.delenv(hardware.FORCE_ENV, raising=False)
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    real = builtins.open
    for text, native in ((CPUINFO, True), ("model name\t: EPYC\nflags\t\t: avx avx2 fma\n", False)):
        monkeypatch.setattr(builtins, "open", lambda p, *a, _t=text, **k: io.StringIO(_t) if p == "/proc/cpuinfo"
                            else real(p, *a, **k))
        hardware.cpu_native_bf16.cache_clear()
        assert hardware.cpu_native_bf16() is native
    hardware.cpu_native_bf16.cache_clear()

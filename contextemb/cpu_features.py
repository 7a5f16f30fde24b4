"""What this CPU computes natively (AVX2, AVX-512, BF16, VNNI, AMX), and the precision that follows from it.

bf16 is only fast where the CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX); elsewhere torch
emulates it and a bf16 matmul runs many times slower than float32. So `auto` picks bf16 only there.

    >>> features = cpu_features()
    >>> features.summary()            # e.g. 'AVX-512 BF16 VNNI (torch: AVX512)'
    >>> choose_precision("auto", torch.device("cpu"))   # 'bf16' or 'float32'
"""

from __future__ import annotations

import functools
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

log = logging.getLogger(__name__)

Precision = Literal["auto", "float32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bf16", "int8")


@dataclass(frozen=True)
class CpuFeatures:
    """The vector-instruction families that matter for torch's CPU kernels."""

    model_name: str
    torch_capability: str  # torch.backends.cpu.get_cpu_capability(): the kernels torch dispatches to
    avx2: bool
    avx512: bool  # AVX-512 foundation
    avx512_bf16: bool  # native bf16 dot products (vdpbf16ps)
    vnni: bool  # int8 dot products (AVX-512 VNNI or AVX-VNNI)
    amx: bool  # AMX tiles (bf16 and int8)

    @property
    def native_bf16(self) -> bool:
        return self.avx512_bf16 or self.amx

    def summary(self) -> str:
        """One line naming the CPU kind, for the head of every benchmark report and log."""
        names = [name for name, present in (("AVX2", self.avx2), ("AVX-512", self.avx512),
                                            ("BF16", self.avx512_bf16), ("VNNI", self.vnni), ("AMX", self.amx))
                 if present]
        kind = " ".join(names) or "no AVX2"
        return f"{kind} (torch kernels: {self.torch_capability}; {self.model_name})"

    def kind(self) -> str:
        """A short tag for file names: 'avx512-bf16', 'avx512' or 'avx2'."""
        if self.avx512 and self.native_bf16:
            return "avx512-bf16"
        if self.avx512:
            return "avx512"
        return "avx2" if self.avx2 else "generic"


def _cpuinfo_flags() -> tuple[set[str], str]:
    """Flags and model name from /proc/cpuinfo (Linux); empty elsewhere."""
    path = Path("/proc/cpuinfo")
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    if not path.is_file():
        return flags, model
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name":
            model = value.strip()
    return flags, model


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    flags, model = _cpuinfo_flags()
    capability = torch.backends.cpu.get_cpu_capability()
    return CpuFeatures(
        model_name=model,
        torch_capability=capability,
        avx2="avx2" in flags or capability in ("AVX2", "AVX512"),
        avx512="avx512f" in flags or capability == "AVX512",
        avx512_bf16="avx512_bf16" in flags,
        vnni="avx512_vnni" in flags or "avx_vnni" in flags,
        amx="amx_bf16" in flags or "amx_tile" in flags,
    )


def choose_precision(requested: str, device: torch.device, *, training: bool = False) -> str:
    """The precision to run in: `requested` itself unless it is 'auto'.

    auto, training: bf16 autocast on a CPU with native bf16 (AVX-512 BF16 or AMX), else float32 -- on a GPU
    too, where bf16 autocast measured slower than float32 for these model sizes (an H200: 0.72x at batch 2,048,
    0.82x at 16,384; benchmarks/README.md).
    auto, inference: bf16 where native as above; else int8 (dynamic quantization, fbgemm's AVX2 integer
    kernels) on a CPU with AVX2, where it measured faster than float32 (409 against 338 sentences/s on an
    AVX2-only machine); float32 elsewhere. The choice is logged.
    """
    from .errors import ConfigError
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "int8" and (training or device.type != "cpu"):
        raise ConfigError("precision int8 is for inference on the CPU only; use auto, float32 or bf16")
    if requested != "auto":
        return requested
    features = cpu_features()
    if device.type == "cuda" and training:
        chosen, why = "float32", "a CUDA GPU, where bf16 autocast trained slower"
    elif device.type == "cuda":
        chosen, why = "bf16", "a CUDA GPU"
    elif features.native_bf16:
        chosen, why = "bf16", "this CPU computes bf16 natively"
    elif not training and features.avx2:
        chosen, why = "int8", "no native bf16; int8 kernels beat float32 with AVX2"
    else:
        chosen, why = "float32", "no native bf16 on this CPU (emulated bf16 is many times slower)"
    log.info("precision auto -> %s (%s; %s)", chosen, why, features.summary())
    return chosen

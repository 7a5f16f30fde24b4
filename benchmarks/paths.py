"""Which precision paths this CPU runs natively; the others are skipped with a line saying why.

On a CPU without native bf16, torch emulates bf16 and a 2048^3 bf16 matmul or a bf16 training step runs many
times slower than float32 (an AVX2-only machine sat in one for over ten minutes); int8 runs on fbgemm's and
oneDNN's AVX2 integer kernels, so it needs AVX2.

    >>> skip_reason("bf16", CpuFeatures(..., avx512_bf16=False, amx=False, ...))
    'this CPU has no native bf16 (AVX-512 BF16 or AMX): torch would emulate it, many times slower than float32'
    >>> skip_reason("float32", features) is None
    True
"""

from __future__ import annotations

from typing import Literal, Optional

from contextemb.cpu_features import CpuFeatures

PrecisionPath = Literal["float32", "bf16", "int8"]


def skip_reason(path: PrecisionPath, features: CpuFeatures) -> Optional[str]:
    """None when `path` runs natively on a CPU with `features`, else why it is skipped."""
    if path == "bf16" and not features.native_bf16:
        return ("this CPU has no native bf16 (AVX-512 BF16 or AMX): torch would emulate it, many times slower "
                "than float32")
    if path == "int8" and not features.avx2:
        return "this CPU has no AVX2, which the int8 kernels (fbgemm, oneDNN) need"
    if path not in ("float32", "bf16", "int8"):
        raise ValueError(f"unknown precision path {path!r}")
    return None


def runnable(paths: tuple[PrecisionPath, ...],
             features: CpuFeatures) -> tuple[tuple[PrecisionPath, ...], dict[PrecisionPath, str]]:
    """The paths to run, in order, and the skipped ones with their reasons."""
    reasons = {path: skip_reason(path, features) for path in paths}
    return tuple(p for p in paths if reasons[p] is None), {p: r for p, r in reasons.items() if r is not None}

"""The CPU a model runs on: its identity (model name and the instruction-set extensions that decide which precision
and int8 path is fast) and what those extensions allow. Speed measured on one CPU says little about another: an
export timed on a CPU with AVX-512 int8 instructions can be slower than torch on one with AVX2 only."""

from __future__ import annotations

import os
import platform
from typing import Any

# The instruction-set extensions that decide which precision and int8 path is fast on a CPU.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# bfloat16 arithmetic in hardware; without it torch emulates bf16 in fp32 and converts at every op.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# 8-bit integer dot products (VNNI, AMX); without them int8 matrix products are widened to 16 bits and rarely
# beat fp32 with FMA.
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu() -> dict[str, Any]:
    """The CPU's model name, logical CPU count and which of ``CPU_FLAGS`` it has (Linux's /proc/cpuinfo;
    elsewhere the platform's processor string only): figures measured on different CPUs are told apart by it."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags]}


def same_cpu_class(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two :func:`cpu` identities are the same model with the same instruction-set extensions (the core
    count is not compared: a speed ratio measured side by side holds across core counts far better than across
    instruction sets)."""
    if not a or not b:
        return False
    return a.get("model") == b.get("model") and sorted(a.get("flags") or []) == sorted(b.get("flags") or [])


def describe_cpu(identity: dict[str, Any]) -> str:
    flags = ", ".join(identity.get("flags") or []) or "none of " + "/".join(CPU_FLAGS)
    return f"{identity.get('model')} ({flags})"


def missing_bf16(identity: dict[str, Any] | None = None) -> str | None:
    """None where this CPU computes bfloat16 in hardware, else the instructions it lacks, for a message."""
    flags = set((identity or cpu())["flags"])
    return None if flags & set(BF16_FLAGS) else "AVX-512 BF16 or AMX-BF16"


def bf16_support(device_type: str) -> tuple[str | None, str]:
    """(what ``device_type`` ("cpu", "cuda") lacks to compute bfloat16 fast, or None; the device as messages name
    it). Without it bfloat16 runs several times slower than float32."""
    if device_type == "cuda":
        import torch

        lacking = None if torch.cuda.is_bf16_supported() else "bfloat16 support (compute capability 8.0 or newer)"
        return lacking, torch.cuda.get_device_name(0)
    return missing_bf16(), describe_cpu(cpu())


def missing_int8(identity: dict[str, Any] | None = None) -> str | None:
    """None where this CPU has 8-bit dot-product instructions, else the instructions it lacks, for a message."""
    flags = set((identity or cpu())["flags"])
    return None if flags & set(INT8_FLAGS) else "AVX-512 VNNI, AVX-VNNI or AMX-INT8"

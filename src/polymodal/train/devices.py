"""Which device a run uses: ``device="auto"|"cpu"|"cuda"|"cuda:N"|"mps"`` -> ``torch.device``.

A device is a runtime choice, never part of a saved model: weights are saved from CPU
copies and load on the CPU, and a model moves to the device where it trains or predicts.
"""

from __future__ import annotations

import torch

from polymodal.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
"""The device names a user chooses from (besides ``cuda:N`` for one GPU of several)."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def device_problem(name) -> str | None:
    """What is wrong with ``device=name`` on this machine (an unknown name, or a GPU that
    is not there), as one sentence naming the value and the fix; None when it is usable."""
    if not isinstance(name, str) or not (name in DEVICES or name.startswith("cuda:")):
        return f"device={name!r} must be one of {', '.join(DEVICES)} (or cuda:N)"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = ("the installed torch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA device is visible on this machine")
            return f"device={name!r} but {why}; use device='auto' or 'cpu'"
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            return (f"device={name!r}: this machine has CUDA devices 0.."
                    f"{torch.cuda.device_count() - 1}; use one of them, or 'cuda'")
    if name == "mps" and not _mps_available():
        return "device='mps' but Apple's MPS backend is not available here; use 'auto' or 'cpu'"
    return None


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU (MPS only when asked: not every op
    the models use runs there); any other name as given, after checking it is there (a
    :class:`ConfigError` of one line if not)."""
    problem = device_problem(name)
    if problem is not None:
        raise ConfigError(problem)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype the loop's forward passes autocast to, or None for fp32: bf16 when asked,
    fp16 when asked (CUDA only; the loop then scales the loss), and under ``"auto"`` on a
    CUDA GPU bf16 where it computes in bf16 (Ampere and later), else fp16. The CPU and MPS
    stay fp32 under ``"auto"``."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(f"precision='fp16' needs a CUDA device, not {device.type}; use "
                              "'bf16' or 'fp32' there")
        return torch.float16
    if precision == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def pins_memory(device: torch.device) -> bool:
    """Whether loaders feeding ``device`` should pin their batches in page-locked memory:
    on CUDA only, where it lets ``Batch.to(device, non_blocking=True)`` copy asynchronously;
    elsewhere pinning costs a copy and buys nothing."""
    return device.type == "cuda"

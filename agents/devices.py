"""The torch device a command may run on, checked once for train.py and evaluate.py alike.

A device that torch does not know (``tpu``) or that this machine lacks (``cuda`` without a
GPU) is a user error found before anything is built or saved; SB3 itself would raise deep in
model construction, or quietly fall back to the CPU for "cuda".
"""

from __future__ import annotations

import torch

from agents.errors import UserError

DEVICE_HELP = "torch device: cpu (default), cuda, cuda:N, mps, or auto (a GPU if there is one)"
AUTO = "auto"


def check_device(device: str) -> str:
    """Return ``device`` if this machine can run on it; UserError naming the fix if not."""
    if device == AUTO:
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {device!r} asked for, but torch sees no CUDA GPU; "
                "use --device cpu (or auto)"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise UserError(
                f"device {device!r} asked for, but torch sees {count} CUDA GPU(s), "
                f"cuda:0 to cuda:{count - 1}; pick one of them"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(
            f"device {device!r} asked for, but torch has no Apple MPS backend here; "
            "use --device cpu (or auto)"
        )
    return device

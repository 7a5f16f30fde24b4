"""Which torch device to run on: the one place that turns a user's `--device` into a torch.device."""

from __future__ import annotations

from typing import Union

import torch

from contextemb.errors import ConfigError


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """torch.device for `device` (default CPU); a clear error for a device this machine does not have."""
    try:
        target = torch.device(device or "cpu")
    except RuntimeError as error:
        raise ConfigError(f"--device {device!r} is not a device torch knows ({error})") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this machine has no CUDA GPU that torch can use")
    if target.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda[:N], got {device!r}")
    return target

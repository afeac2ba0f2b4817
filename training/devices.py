"""The one device setting (`auto | cpu | cuda`) every command honours; bundles stay device-free."""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a CUDA device is visible, else "cpu"; "cuda" without one is a clear error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is visible; use device=auto or device=cpu")
    return device

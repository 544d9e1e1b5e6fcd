"""torch's inference mode for methods of modules that must import without torch (the model interfaces the web
tier and beat name but never run): torch is imported on the first call, in the worker that runs the model."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def inference_mode(function: Callable[P, R]) -> Callable[P, R]:
    """`@torch.inference_mode()` without importing torch when the decorated class is defined."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        with torch.inference_mode():
            return function(*args, **kwargs)

    return run


def load_checkpoint(path: object) -> Any:
    """A torch checkpoint (tensors only: `weights_only`, never arbitrary pickles) on the CPU."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[arg-type]

"""ONNX Runtime sessions, set up one way for every model that runs on it (embeddings, detectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(path: Path) -> Any:
    """An inference session on the CPU with as many threads as torch uses, so a worker's ONNX models and
    torch models share the same CPU budget. `run` on it is safe from several threads at once."""
    import onnxruntime  # imported on first use: only the ONNX paths need it loaded
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

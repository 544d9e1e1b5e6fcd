"""Embedding throughput: eager fp32 (baseline) vs channels-last, bf16 autocast, torch.compile and ONNX
Runtime, per model and size (the one-off compile or ONNX export happens in the warm-up, outside the timing).

python -m benchmarks.embedding [--images 32] [--batch 16] [--sizes 224,320]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from catalog import synthetic
from ml_service import embedding, imaging, networks

# Exported networks of this run (the export happens in the warm-up, outside the timing).
ONNX_CACHE = Path(tempfile.mkdtemp(prefix="resight-bench-onnx-"))


def crops(n: int) -> list[imaging.Crop]:
    out = []
    for i in range(n):
        photo = synthetic.render(synthetic.make_pattern(i), seed=i, size=(640, 480))
        out.append(imaging.crop(Image.open(io.BytesIO(photo.jpeg)).convert("RGB"), photo.box))
    return out


def throughput(
    model: embedding.EmbeddingModel, items: list[imaging.Crop], batch: int, repeats: int = 2
) -> float:
    model.predict(items[:batch], batch_size=batch)  # warm-up (allocations, oneDNN kernels)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(items, batch_size=batch)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def variants(name: str, size: int) -> dict[str, embedding.EmbeddingModel]:
    """The baseline (eager, NCHW, fp32) and the optimised paths, all of one model at one input size."""

    def make(
        channels_last: bool, bf16: bool, compiled: bool = False, runtime: str = "torch"
    ) -> embedding.EmbeddingModel:
        if name == "miewid-msv3":
            # Speed does not depend on the weights: a random network of the same architecture, no download.
            model: embedding.EmbeddingModel = embedding.MiewIdMsv3(weights_path="unused", bf16=bf16)
            model._build = networks.MiewIdNetwork  # type: ignore[method-assign]
        else:
            model = embedding.MobileNetV2ImageNet(bf16=bf16)
        model.channels_last = channels_last
        model.compiled = compiled
        model.runtime = runtime
        model.onnx_cache = ONNX_CACHE
        model.preprocessing = embedding.Preprocessing(size=size)
        return model

    return {
        "eager NCHW fp32": make(False, bf16=False),
        "channels-last fp32": make(True, bf16=False),
        "channels-last bf16": make(True, bf16=True),
        "channels-last compiled": make(True, bf16=False, compiled=True),
        "ONNX Runtime fp32": make(False, bf16=False, runtime="onnx"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--configs",
        default="imagenet-mobilenetv2:224,imagenet-mobilenetv2:320,miewid-msv3:256,miewid-msv3:440",
    )
    args = parser.parse_args()
    items = crops(args.images)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.images} crops, batch {args.batch}"
    )
    print(f"{'model':<24}{'size':>6}{'path':>24}{'img/s':>10}{'x base':>9}{'max |diff|':>12}")
    for config in args.configs.split(","):
        name, size = config.split(":")
        reference = base = None
        for label, model in variants(name, int(size)).items():
            n = args.images if name != "miewid-msv3" else max(args.batch, args.images // 4)
            rate = throughput(model, items[:n], args.batch)
            vectors = model.predict(items[:4])
            reference = vectors if reference is None else reference
            base = rate if base is None else base
            diff = float(np.abs(vectors - reference).max())
            print(f"{name:<24}{size:>6}{label:>24}{rate:>10.2f}{rate / base:>9.2f}{diff:>12.4f}")


if __name__ == "__main__":
    main()

"""Embedding throughput: eager fp32 (baseline) vs channels-last and bf16 autocast, per model and size.

python -m benchmarks.embedding [--images 32] [--batch 16] [--sizes 224,320]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

from catalog import synthetic
from ml_service import embedding, imaging


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sizes", default="224,320")
    args = parser.parse_args()
    items = crops(args.images)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.images} crops, batch {args.batch}"
    )
    print(f"{'model':<24}{'size':>6}{'path':>22}{'img/s':>10}{'x fp32':>9}{'max |diff|':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        paths = {
            "eager fp32": embedding.MobileNetV2ImageNet(),
            "bf16 autocast": embedding.MobileNetV2ImageNet(dtype=torch.bfloat16),
        }
        reference = None
        base = None
        for label, model in paths.items():
            model.preprocessing = embedding.Preprocessing(size=size)
            rate = throughput(model, items, args.batch)
            vectors = model.predict(items[:8])
            reference = vectors if reference is None else reference
            base = rate if base is None else base
            diff = float(np.abs(vectors - reference).max())
            print(f"{model.name:<24}{size:>6}{label:>22}{rate:>10.1f}{rate / base:>9.2f}{diff:>12.4f}")


if __name__ == "__main__":
    main()

"""Training and re-embedding throughput on this machine (issue 5).

Training: images/s of fine-tuning steps (forward, sub-center ArcFace loss, backward, AdamW) for the
mobilenetv2 backbone, per input size and batch size, with the baseline (224 px, batch 32, NCHW) measured in
the same run. Re-embedding: photos/s of embedding crops with a fine-tuned model (what re-embedding the
catalogue does per batch, without the database).

python -m benchmarks.training [--steps 5] [--sizes 224,160,128] [--batches 32,16]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.embedding import crops, throughput
from ml_service import embedding, training

BASELINE = (224, 32, False)


def train_rate(size: int, batch: int, channels_last: bool, steps: int, classes: int = 200) -> float:
    torch.manual_seed(0)
    network = embedding.EmbeddingNetwork("mobilenetv2")
    head = training.SubCenterArcFace(network.dim, classes, 3, 30.0, torch.full((classes,), 0.3))
    optimizer = torch.optim.AdamW([*network.parameters(), *head.parameters()], lr=1e-4)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    network.train()
    images = torch.randn(batch, 3, size, size)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (batch,))

    def step() -> None:
        loss = head(network(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sizes", default="224,160,128")
    parser.add_argument("--batches", default="32,16")
    parser.add_argument("--embed-images", type=int, default=64)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = train_rate(*BASELINE, args.steps)
    rows = [("224 px, batch 32, NCHW (baseline)", base)]
    for size in (int(s) for s in args.sizes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            for channels_last in (False, True):
                if (size, batch, channels_last) == BASELINE:
                    continue
                label = f"{size} px, batch {batch}, {'channels-last' if channels_last else 'NCHW'}"
                rows.append((label, train_rate(size, batch, channels_last, args.steps)))
    print(f"\n{'fine-tuning step (mobilenetv2)':<44}{'images/s':>10}{'vs baseline':>13}")
    for label, rate in rows:
        print(f"{label:<44}{rate:>10.1f}{rate / base:>12.2f}x")

    items = crops(args.embed_images)
    print(f"\n{'re-embedding (fine-tuned mobilenetv2)':<44}{'photos/s':>10}{'vs baseline':>13}")
    reference = None
    for size in (int(s) for s in args.sizes.split(",")):
        model = embedding.MobileNetV2ImageNet()  # the same network a fine-tuned mobilenetv2 space runs
        model.preprocessing = embedding.Preprocessing(size=size)
        rate = throughput(model, items, batch=32)
        reference = reference or rate
        label = f"{size} px, batch 32, channels-last, flip-averaged"
        print(f"{label:<44}{rate:>10.1f}{rate / reference:>12.2f}x")


if __name__ == "__main__":
    main()

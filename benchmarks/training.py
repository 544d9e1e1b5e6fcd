"""Training and re-embedding throughput on this machine (issues 5 and 7).

Input pipelines (issue 7): today's loader (the path training took until now: decode and augment every image
at every step with PIL/OpenCV, `pipeline="decode"`) against the decoded cache with the augmentation on the
device (`pipeline="cached"`), on real photos of a dataset folder: images/s of the input alone (batches ready
on the device) and of full training steps (input, forward, sub-center ArcFace loss, backward, AdamW), with
ratios against today's loader measured in the same run (the pipelines take turns, best of `--repeats` kept);
the cache's one-off build is timed apart. On a GPU when there is one (`--device auto`), else on the CPU.

Training steps (issue 5): images/s of fine-tuning steps on random tensors for the mobilenetv2 backbone, per
input size and batch size, with the baseline (224 px, batch 32, NCHW) measured in the same run.
Re-embedding: photos/s of embedding crops with a fine-tuned model (what re-embedding the catalogue does per
batch, without the database).

python -m benchmarks.training [--parts pipeline,steps,reembed] [--dataset ../shared/datasets/catfaces]
    [--images 256] [--train-steps 4] [--repeats 2] [--workers 0] [--threads N] [--steps 5]
    [--sizes 224,160,128] [--batches 32,16]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from benchmarks.embedding import crops, throughput
from ml_service import embedding, evaluation, networks, splits, training

BASELINE = (224, 32, False)
PARTS = ("pipeline", "steps", "reembed")


def train_rate(size: int, batch: int, channels_last: bool, steps: int, classes: int = 200) -> float:
    torch.manual_seed(0)
    network = networks.EmbeddingNetwork("mobilenetv2")
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


# --- input pipelines ---------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_batches(
    batches: Iterable[training.Batch],
    count: int,
    device: torch.device,
    work: Callable[[training.Batch], None],
) -> float:
    """images/s over `count` batches after one warm-up batch (loader processes starting, kernels chosen)."""
    stream = iter(batches)
    work(next(stream))
    _sync(device)
    start, images = time.perf_counter(), 0
    for batch in itertools.islice(stream, count):
        work(batch)
        images += len(batch[1])
    _sync(device)
    return images / (time.perf_counter() - start)


def _epochs(inputs: training.CachedInput | training.DecodingInput) -> Iterable[training.Batch]:
    while True:
        yield from inputs


def pipeline_rates(
    dataset: Path, images: int, train_steps: int, repeats: int, config: training.TrainConfig
) -> list[tuple[str, str, float]]:
    items = evaluation.read_dataset(dataset)[:images]
    samples = [training.Sample(i.path, splits.identity(i)) for i in items]
    classes = {c: k for k, c in enumerate(sorted({s.label for s in samples}))}
    labels = [classes[s.label] for s in samples]
    device = training.pick_device(config.device)
    rows: list[tuple[str, str, float]] = []
    per_epoch = len(samples) // config.batch_size

    def inputs(pipeline: str, folder: Path) -> training.CachedInput | training.DecodingInput:
        batches = training.index_batches(labels, config, torch.Generator().manual_seed(0))
        if pipeline == "decode":
            return training.DecodingInput(samples, classes, config, batches, device)
        augment_rng = torch.Generator().manual_seed(1)
        return training.CachedInput(samples, classes, config, batches, device, folder, augment_rng)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cached = inputs("cached", Path(tmp))  # builds the cache: decode and resize once
        build = len(samples) / (time.perf_counter() - start)
        decoding = inputs("decode", Path(tmp))
        pipelines = (("today's loader", decoding), ("cached + device augmentation", cached))

        def best(count: int, work: Callable[[training.Batch], None]) -> list[float]:
            """Best of `repeats` per pipeline, the pipelines taking turns (the machine's load drifts)."""
            rates = [0.0] * len(pipelines)
            for _ in range(repeats):
                for k, (_, source) in enumerate(pipelines):
                    rates[k] = max(rates[k], _timed_batches(_epochs(source), count, device, work))
            return rates

        for (label, _), rate in zip(pipelines, best(per_epoch, lambda batch: None), strict=True):
            rows.append(("input pipeline alone", label, rate))
        rows.append(("input pipeline alone", "(the cache's build, once per run)", build))

        torch.manual_seed(0)
        network = networks.EmbeddingNetwork(config.backbone).to(device)
        network.to(memory_format=torch.channels_last)
        head = training.SubCenterArcFace(
            network.dim, len(classes), 3, 30.0, torch.full((len(classes),), 0.3)
        ).to(device)
        optimizer = torch.optim.AdamW([*network.parameters(), *head.parameters()], lr=1e-4)
        network.train()

        def step(batch: training.Batch) -> None:
            images, labels = batch
            loss = head(network(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for (label, _), rate in zip(pipelines, best(train_steps, step), strict=True):
            rows.append(("training steps", label, rate))
    return rows


def print_pipelines(rows: list[tuple[str, str, float]], config: training.TrainConfig) -> None:
    device = training.pick_device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n{config.backbone}, {config.image_size} px, batch {config.batch_size}, on {name}; "
        f"today's loader with {config.workers} loader processes"
    )
    print(f"{'':<24}{'pipeline':<38}{'images/s':>10}{'vs today':>10}")
    baseline: dict[str, float] = {}
    for part, label, rate in rows:
        baseline.setdefault(part, rate)
        ratio = f"{rate / baseline[part]:>9.2f}x" if not label.startswith("(") else f"{'':>10}"
        print(f"{part:<24}{label:<38}{rate:>10.1f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default=",".join(PARTS), help=f"some of {', '.join(PARTS)}")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/catfaces"))
    parser.add_argument("--images", type=int, default=256, help="photos of the dataset the pipelines read")
    parser.add_argument("--train-steps", type=int, default=4, help="timed training steps per pipeline")
    parser.add_argument("--repeats", type=int, default=2, help="pipelines measured in turns, best kept")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="today's loader processes; cache threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch's threads (default: all cores)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sizes", default="224,160,128")
    parser.add_argument("--batches", default="32,16")
    parser.add_argument("--embed-images", type=int, default=64)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    if "pipeline" in parts:
        config = training.TrainConfig(
            image_size=args.image_size, batch_size=args.batch_size, workers=args.workers, device=args.device
        )
        print_pipelines(
            pipeline_rates(args.dataset, args.images, args.train_steps, args.repeats, config), config
        )

    if "steps" in parts:
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

    if "reembed" in parts:
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

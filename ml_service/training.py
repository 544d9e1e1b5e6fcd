"""Training one re-identification model for all species, as in the MiewID paper (Otarashvili et al., 2024).

- Network: a backbone (torchvision's ImageNet MobileNetV2, the offline start, or any timm model such as
  `efficientnetv2_rw_m`, the full-size MiewID backbone), GeM pooling and a BatchNorm embedding head: the
  same shape as the models in `ml_service.embedding`, so a trained network embeds like any other version.
- Loss: sub-center ArcFace (k = 3 sub-centres per identity) with dynamic margins from class frequency
  (rare identities get larger margins: m_c = a * n_c^(-1/4) + b, scaled into [margin_min, margin_max]).
- Augmentation: colour jitter, sharpening, CLAHE, shift/scale/rotation (and no flips when the left and right
  sides are separate identities). By default each image is decoded once into a cache in the run folder and
  whole batches are augmented on the training device (`ml_service.augment`, pipeline "cached"); pipeline
  "decode" decodes and augments every image at every step with PIL/OpenCV in loader processes (the former
  path, kept for comparison: benchmarks/training.py).
- Schedule: linear warm-up, then exponential decay per epoch; AdamW.
- Optional hard-negative mining: batches built from an identity and its nearest identities (by their ArcFace
  centres), so the loss sees the confusable animals together.
- Deterministic for a seed (on one device); runs on the CPU at small scale and on a GPU when present;
  a checkpoint after every epoch, and a run resumes from its last checkpoint.

Pure PyTorch + timm + OpenCV; no Django (the platform's orchestration calls this).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    WeightedRandomSampler,
)
from torchvision.transforms import v2

from ml_service.augment import DecodedCache, DeviceAugment, cache_size
from ml_service.embedding import IMAGENET_MEAN, IMAGENET_STD
from ml_service.imaging import load_oriented
from ml_service.networks import EmbeddingNetwork, trained_state

CHECKPOINT = "checkpoint.pt"
EXPORT = "model.pt"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # the identity: individual (and side, when left and right are kept apart)
    species: str = ""  # for species-balanced sampling (`TrainConfig.species_balance`)


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = "mobilenetv2"
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3  # head and embedding layer; the backbone trains at lr * backbone_lr_factor
    backbone_lr_factor: float = 0.3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    decay: float = 0.85  # per epoch after the warm-up
    subcenters: int = 3
    scale: float = 30.0
    margin_min: float = 0.15
    margin_max: float = 0.45
    hard_negatives: bool = False
    # Species-balanced sampling: each photo is drawn with weight n_species^-species_balance (with
    # replacement, as many draws per epoch as photos): 0 draws every photo once per epoch, 1 every species
    # equally often (a small species' photos then repeat many times per epoch), between them a compromise.
    species_balance: float = 0.0
    flips: bool = True  # False when left and right sides are separate identities
    seed: int = 0
    workers: int = 0  # "decode": loader processes; "cached": threads decoding the cache
    device: str = "auto"
    pipeline: str = "cached"  # or "decode": PIL/OpenCV per image and step (PIPELINES)
    # Start from a network trained before (a run's model.pt, the base model's safetensors) instead of the
    # backbone's ImageNet weights: what it learnt about re-identification carries over.
    init: str = ""


PIPELINES = ("cached", "decode")


# --- augmentation ----------------------------------------------------------------------------------------


class Clahe:
    """Contrast-limited adaptive histogram equalisation on the lightness channel (OpenCV)."""

    def __init__(self, p: float = 0.3, clip: float = 2.0) -> None:
        self.p, self.clip = p, clip

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        lab = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clipLimit=self.clip, tileGridSize=(8, 8)).apply(lab[..., 0])
        return Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


class Sharpen:
    def __init__(self, p: float = 0.3) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.SHARPEN) if random.random() < self.p else image


def transforms(config: TrainConfig, train: bool) -> Callable[[Image.Image], torch.Tensor]:
    size = (config.image_size, config.image_size)
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return v2.Compose([v2.Resize(size), *tail])
    steps: list[Callable[..., object]] = [
        v2.Resize(size),
        Clahe(),
        Sharpen(),
        v2.RandomApply([v2.ColorJitter(0.3, 0.3, 0.2, 0.05)], p=0.7),
        v2.RandomAffine(degrees=15, translate=(0.08, 0.08), scale=(0.85, 1.15)),
    ]
    if config.flips:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, *tail])


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, samples: Sequence[Sample], classes: dict[str, int], transform: Callable[..., object]):
        self.samples, self.classes, self.transform = list(samples), classes, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        tensor = self.transform(load_oriented(sample.path))
        assert isinstance(tensor, torch.Tensor)
        return tensor, self.classes[sample.label]


Batch = tuple[torch.Tensor, torch.Tensor]  # normalised channels-last images and labels, on the device


class DecodingInput:
    """Pipeline "decode": every image decoded and augmented at every step (PIL/OpenCV, `transforms`), in
    `workers` loader processes; the batches then move to the device."""

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: dict[str, int],
        config: TrainConfig,
        batches: BatchSampler | NeighbourBatches,
        device: torch.device,
    ) -> None:
        dataset = ImageDataset(samples, classes, transforms(config, train=True))
        self.loader = DataLoader(dataset, batch_sampler=batches, num_workers=config.workers)
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            yield images.to(self.device, memory_format=torch.channels_last), labels.to(self.device)


class CachedInput:
    """Pipeline "cached": batches gathered from the decoded cache (`out/decoded-<size>.u8`, built on first
    use) as uint8, moved to the device and augmented there as a whole (`DeviceAugment`)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: dict[str, int],
        config: TrainConfig,
        batches: BatchSampler | NeighbourBatches,
        device: torch.device,
        out: Path,
        generator: torch.Generator,
    ) -> None:
        paths = [s.path for s in samples]
        self.cache = DecodedCache(out, paths, cache_size(config.image_size), threads=config.workers)
        self.labels = torch.tensor([classes[s.label] for s in samples])
        self.augment = DeviceAugment(config.image_size, config.flips, IMAGENET_MEAN, IMAGENET_STD)
        self.batches, self.device, self.generator = batches, device, generator

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.batches:
            images = self.cache.batch(indices)
            if self.device.type == "cuda":
                images = images.pin_memory()  # an asynchronous copy: the CPU gathers the next batch meanwhile
            images = images.to(self.device, non_blocking=True)
            yield self.augment(images, self.generator), self.labels[indices].to(self.device)


def species_weights(species: Sequence[str], balance: float) -> torch.Tensor:
    """Each photo's sampling weight, n_species^-balance (the weights of one species sum to n^(1-balance))."""
    counts = Counter(species)
    return torch.tensor([counts[s] ** -balance for s in species], dtype=torch.float64)


def index_batches(
    labels: Sequence[int], config: TrainConfig, generator: torch.Generator, species: Sequence[str] = ()
) -> BatchSampler | NeighbourBatches:
    """The batches of an epoch as lists of sample indices: shuffled (the last short batch dropped), drawn
    with species-balanced weights (`TrainConfig.species_balance`), or hard-negative batches."""
    if config.hard_negatives:
        return NeighbourBatches(labels, config.batch_size, 4, config.seed)
    order: Sampler[int]
    if config.species_balance and len(set(species)) > 1:
        weights = species_weights(species, config.species_balance)
        order = WeightedRandomSampler(weights.tolist(), len(labels), replacement=True, generator=generator)
    else:
        order = RandomSampler(range(len(labels)), generator=generator)
    return BatchSampler(order, config.batch_size, drop_last=len(labels) > config.batch_size)


# --- the network and the loss ----------------------------------------------------------------------------


def dynamic_margins(counts: Sequence[int], low: float, high: float) -> torch.Tensor:
    """Per-class ArcFace margins: n^(-1/4) of the class size, mapped onto [low, high] (rare -> high)."""
    raw = np.asarray(counts, dtype=np.float64) ** -0.25
    span = raw.max() - raw.min()
    scaled = (raw - raw.min()) / span if span > 0 else np.zeros_like(raw)
    return torch.tensor(low + (high - low) * scaled, dtype=torch.float32)


class SubCenterArcFace(nn.Module):
    """k sub-centres per class; a sample's cosine to its class is the best of its sub-centres, so noisy or
    multi-modal identities (two seasons' coats) do not pull one centre apart."""

    def __init__(self, dim: int, classes: int, subcenters: int, scale: float, margins: torch.Tensor) -> None:
        super().__init__()
        self.classes, self.k, self.scale = classes, subcenters, scale
        self.weight = nn.Parameter(torch.empty(classes * subcenters, dim))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("margins", margins)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        cos = nn.functional.normalize(embeddings) @ nn.functional.normalize(self.weight).T
        return cos.view(-1, self.classes, self.k).amax(dim=2)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings).clamp(-1 + 1e-7, 1 - 1e-7)
        margin = self.margins[labels]  # type: ignore[index]
        target = cos.gather(1, labels[:, None]).squeeze(1)
        theta = torch.acos(target)
        # Past pi - m the angle would wrap round: there the penalty continues linearly (as in insightface).
        linear = target - torch.sin(math.pi - margin) * margin
        with_margin = torch.where(theta + margin < math.pi, torch.cos(theta + margin), linear)
        logits = cos.scatter(1, labels[:, None], with_margin[:, None])
        return nn.functional.cross_entropy(logits * self.scale, labels)

    def centres(self) -> torch.Tensor:
        """One direction per class (mean of its sub-centres), for hard-negative batches."""
        w = nn.functional.normalize(self.weight.detach()).view(self.classes, self.k, -1).mean(1)
        return nn.functional.normalize(w)


class NeighbourBatches(Sampler[list[int]]):
    """Hard-negative mining: each batch is an identity and its nearest identities (by ArcFace centres),
    a few images of each, so the confusable animals meet in the loss."""

    def __init__(self, labels: Sequence[int], batch_size: int, per_class: int, seed: int) -> None:
        self.by_class: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            self.by_class.setdefault(label, []).append(index)
        self.batch_size, self.per_class = batch_size, per_class
        self.rng = random.Random(seed)
        self.neighbours: torch.Tensor | None = None
        self.length = max(1, len(labels) // batch_size)

    def update(self, centres: torch.Tensor) -> None:
        sims = centres @ centres.T
        self.neighbours = sims.argsort(dim=1, descending=True)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[list[int]]:
        classes = list(self.by_class)
        for _ in range(self.length):
            anchor = self.rng.choice(classes)
            order = (
                self.neighbours[anchor].tolist()
                if self.neighbours is not None
                else [anchor, *self.rng.sample(classes, min(len(classes), 64))]
            )
            batch: list[int] = []
            for label in order:
                members = self.by_class.get(label, [])
                batch += self.rng.sample(members, min(self.per_class, len(members)))
                if len(batch) >= self.batch_size:
                    break
            yield batch[: self.batch_size]


# --- the loop ----------------------------------------------------------------------------------------------


@dataclass
class EpochLog:
    epoch: int
    loss: float
    lr: float
    seconds: float
    images_per_second: float


@dataclass
class History:
    config: dict[str, object]
    classes: list[str]
    epochs: list[EpochLog] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CPU kernels are deterministic for a fixed thread count; cuDNN needs telling (and no autotuning).
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return float(config.decay ** ((step - warmup) / steps_per_epoch))

    return factor


def train(
    samples: Sequence[Sample],
    out: Path,
    config: TrainConfig,
    log: Callable[[EpochLog], None] = lambda e: None,
    stop_after: int | None = None,
) -> History:
    """Train on `samples`, checkpointing into `out` after every epoch; resumes from `out` when a checkpoint
    is there. `stop_after` ends the call after that many epochs of this call (the tests interrupt a run)."""
    if config.pipeline not in PIPELINES:
        raise ValueError(f"Unknown input pipeline {config.pipeline!r}; known: {', '.join(PIPELINES)}")
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    device = pick_device(config.device)
    classes = sorted({s.label for s in samples})
    index = {c: i for i, c in enumerate(classes)}
    counts = Counter(s.label for s in samples)
    # Channels-last: 1.6x the images/s of NCHW for the same step on CPU (benchmarks/training.py).
    network = EmbeddingNetwork(config.backbone, pretrained=not config.init)
    if config.init:
        backbone, start_state = trained_state(Path(config.init))
        if backbone != config.backbone:
            raise ValueError(f"{config.init} is a {backbone} network, not {config.backbone}")
        network.load_state_dict(start_state)
    network.to(device)
    network.to(memory_format=torch.channels_last)
    head = SubCenterArcFace(
        network.dim,
        len(classes),
        config.subcenters,
        config.scale,
        dynamic_margins([counts[c] for c in classes], config.margin_min, config.margin_max),
    ).to(device)
    groups: list[dict[str, Any]] = [
        {"params": list(network.backbone.parameters()), "lr": config.lr * config.backbone_lr_factor},
        {"params": [*network.pool.parameters(), *network.bn.parameters(), *head.parameters()]},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)  # the batches' order
    augment_rng = torch.Generator().manual_seed(config.seed + 1)  # the cached pipeline's augmentations
    batches = index_batches(
        [index[s.label] for s in samples], config, generator, [s.species for s in samples]
    )
    sampler = batches if isinstance(batches, NeighbourBatches) else None
    steps = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [_schedule(config, steps)] * 2)
    history = History(asdict(config), classes)
    start = 0
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["classes"] != classes or state["config"] != asdict(config):
            raise ValueError(
                f"{checkpoint} belongs to another run (other data or settings): use another folder."
            )
        network.load_state_dict(state["network"])
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history.epochs = [EpochLog(**e) for e in state["epochs"]]
        start = len(history.epochs)
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["loader_rng"])
        augment_rng.set_state(state["augment_rng"])
        if sampler is not None:
            sampler.rng.setstate(state["sampler_rng"])
    end = config.epochs if stop_after is None else min(config.epochs, start + stop_after)
    inputs: CachedInput | DecodingInput | None = None
    if start < end:  # the cache is only built when there is an epoch to train
        inputs = (
            CachedInput(samples, index, config, batches, device, out, augment_rng)
            if config.pipeline == "cached"
            else DecodingInput(samples, index, config, batches, device)
        )
    for epoch in range(start, end):
        assert inputs is not None
        if sampler is not None and epoch > 0:
            sampler.update(head.centres().cpu())
        network.train()
        began, seen = time.monotonic(), 0
        # The loss sums on the device: no synchronisation per step, so the next batch is prepared meanwhile.
        total = torch.zeros((), dtype=torch.float64, device=device)
        for images, labels in inputs:
            loss = head(network(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach().double() * len(labels)
            seen += len(labels)
        seconds = time.monotonic() - began
        lr = float(scheduler.get_last_lr()[1])
        entry = EpochLog(epoch + 1, total.item() / max(seen, 1), lr, seconds, seen / seconds)
        history.epochs.append(entry)
        state = {
            "network": network.state_dict(),
            "head": head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epochs": [asdict(e) for e in history.epochs],
            "classes": classes,
            "config": asdict(config),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
            "loader_rng": generator.get_state(),
            "augment_rng": augment_rng.get_state(),
            "sampler_rng": sampler.rng.getstate() if sampler is not None else None,
        }
        # Write then rename: a run killed mid-write keeps its previous checkpoint intact.
        torch.save(state, out / f"{CHECKPOINT}.tmp")
        (out / f"{CHECKPOINT}.tmp").replace(checkpoint)
        log(entry)  # after the checkpoint: what is reported done is never redone after a crash
    if isinstance(inputs, CachedInput) and len(history.epochs) == config.epochs:
        inputs.cache.remove()  # a finished run needs its decoded images no more
    export(network, config, out / EXPORT)
    (out / "history.json").write_text(json.dumps(asdict(history), indent=1))
    return history


def export(network: EmbeddingNetwork, config: TrainConfig, path: Path) -> None:
    """The embedding network alone (no ArcFace head), as `ml_service.embedding.FineTuned` loads it."""
    payload = {
        "backbone": config.backbone,
        "image_size": config.image_size,
        "flips": config.flips,
        "state": network.state_dict(),
    }
    torch.save(payload, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)

"""`resight-base`: the multi-species re-identification model a new install starts with, and the one command
that rebuilds it from openly licensed, individually labelled photos:

    python -m ml_service.base_model ../shared/datasets/dogfacenet-dev ../shared/datasets/catfaces \\
        --out runs/resight-base

The recipe is the platform's own retraining (`ml_service.retrain` -> `ml_service.training`): the MiewID
paper's split over all species, sub-center ArcFace with dynamic margins, species-balanced sampling, the
augmentations of `ml_service.augment`; every epoch is checkpointed (run the command again to resume). Then:

- the ImageNet start and the trained model are scored per species on the split's test photos and on its test
  individuals never seen in training (one-vs-all top-1/5/10, mAP);
- leave-one-species-out (unless --no-leave-out): for each species, the same training without it, scored on
  that species (its test photos and all of its photos), estimates what the model does for species it never
  saw;
- the trained network is written in fp16 with its metadata (`WEIGHTS`, safetensors) and the model card
  (`CARD`) is written from the measured tables, both into the source tree (`--ship`) or the run folder.

Only datasets whose licence is known (`LICENCES`, or `--licence name="..."`) are accepted: the weights are
published with the project, so their training data must allow it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ml_service import evaluation, retrain, splits, training
from ml_service.embedding import (
    BASE_MODEL_NAME,
    BASE_WEIGHTS,
    EmbeddingModel,
    FineTuned,
    ResightBase,
    get_model,
)
from ml_service.imaging import crop, load_oriented
from ml_service.networks import EmbeddingNetwork

WEIGHTS = BASE_WEIGHTS
CARD = WEIGHTS.with_suffix(".md")
START = "imagenet-mobilenetv2"
# Known openly licensed datasets (folder name -> licence and attribution, as ../shared/datasets/README.md).
LICENCES = {
    "dogfacenet-dev": "CC BY 4.0 — DogFaceNet (Mougeot, Li, Jia, PRICAI 2019), a deterministic half of its "
    "identities",
    "catfaces": "MIT — gpriamo/Cat-Faces-Identification",
}
# The recipe, each setting chosen by measurement (the model card's tables; README "Base model").
RECIPE = training.TrainConfig(
    backbone="mobilenetv2",
    image_size=224,
    epochs=8,
    batch_size=48,
    lr=1e-3,
    backbone_lr_factor=0.1,  # against 0.2 and 0.5: README "Base model"
    warmup_epochs=1.0,
    decay=0.75,
    scale=51.5,  # the MiewID paper's ArcFace scale
    species_balance=0.5,
)


# The shipped weights are MIX * trained + (1 - MIX) * the ImageNet start, weight for weight (WiSE-FT,
# Wortsman et al., CVPR 2022). Measured (README "Base model"): every share from 0.3 to 0.7 beats the trained
# network alone (1.0) on dogs never seen in training; 0.3 keeps nearly all of that gain (96.4 against 96.9 at
# 0.5) and loses the least on a species never seen (cats, trained without them: -1.6 against -3.5 at 0.5).
MIX = 0.3
MIXED = "mixed.pt"


@dataclass(frozen=True)
class Dataset:
    folder: Path
    licence: str

    @property
    def name(self) -> str:
        return self.folder.name


def datasets_of(folders: Sequence[Path], licences: Mapping[str, str]) -> list[Dataset]:
    known = {**LICENCES, **licences}
    missing = [f.name for f in folders if f.name not in known]
    if missing:
        raise SystemExit(
            f"No known licence for {', '.join(missing)}: the base model is published, so its data must be "
            'openly licensed. Name it with --licence NAME="licence and attribution".'
        )
    return [Dataset(f, known[f.name]) for f in folders]


# --- weights file ----------------------------------------------------------------------------------------


def tensors_digest(state: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_weights(trained: Path, path: Path, metadata: Mapping[str, str]) -> dict[str, str]:
    """The embedding network of a run's `model.pt` in fp16 (integer buffers as they are), with its version
    (the date and a digest of the tensors, so new weights are a new embedding space) in the metadata."""
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    state = {
        name: (t.half() if t.is_floating_point() else t).contiguous() for name, t in payload["state"].items()
    }
    digest = tensors_digest(state)
    meta = {
        "name": BASE_MODEL_NAME,
        "version": f"{dt.date.today():%Y%m%d}-{payload['backbone']}-{payload['image_size']}-{digest[:10]}",
        "backbone": str(payload["backbone"]),
        "image_size": str(payload["image_size"]),
        "flips": "true" if payload.get("flips", True) else "false",
        "tensors_sha256": digest,
        **metadata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    save_file(state, str(partial), metadata=meta)
    partial.replace(path)
    return meta


def mix_with_start(trained: Path, mix: float) -> Path:
    """`mix` of the trained network plus `1 - mix` of its starting weights (the backbone's ImageNet weights,
    GeM p=3, an identity BatchNorm), saved beside it as `MIXED` in the format of a run's `model.pt`."""
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    start = EmbeddingNetwork(str(payload["backbone"]), pretrained=True).state_dict()
    payload["state"] = {
        name: mix * value + (1 - mix) * start[name] if value.is_floating_point() else value
        for name, value in payload["state"].items()
    }
    path = trained.with_name(MIXED)
    torch.save(payload, path)
    return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fp16_agreement(trained: Path, shipped: Path, items: Sequence[evaluation.Item]) -> float:
    """The lowest cosine between the fp32 run's and the fp16 file's vectors of the same photos."""
    crops = [crop(load_oriented(i.path)) for i in items]
    full, half = FineTuned(trained), ResightBase(shipped)
    full.runtime = half.runtime = "torch"
    return float(np.min(np.sum(full.predict(crops) * half.predict(crops), axis=1)))


# --- the measurements --------------------------------------------------------------------------------------


def leave_one_out(
    split: splits.Split,
    items: Sequence[evaluation.Item],
    held_out: str,
    out: Path,
    config: training.TrainConfig,
    mix: float,
    start: EmbeddingModel,
    log: Any,
) -> dict[str, Any]:
    """Train on the split's training photos of every other species, mixed with the start as the shipped
    model is; score the start and the result on the held-out species: its test photos of the split and all
    of its photos."""
    train = [i for i in split.train if i.species != held_out]
    history = training.train(retrain.samples_of(train, sides_apart=False), out, config, log=log)
    sets = {
        "test": [i for i in split.test if i.species == held_out],
        "all": [i for i in items if i.species == held_out],
    }
    return {
        "held_out": held_out,
        "trained_on": retrain.species_counts(train),
        "epochs": len(history.epochs),
        "training_seconds": round(sum(e.seconds for e in history.epochs)),
        "start": retrain.score_sets(start, sets),
        "trained": retrain.score_sets(FineTuned(mix_with_start(out / training.EXPORT, mix)), sets),
    }


# --- the model card ----------------------------------------------------------------------------------------


def _row(model: str, name: str, species: str, m: Mapping[str, float]) -> str:
    return (
        f"| {model} | {name} | {species} | {m['queries']:.0f} | {m['top1']:.1f} | {m['top5']:.1f} | "
        f"{m['top10']:.1f} | {m['mAP']:.1f} |"
    )


HEADER = (
    "| model | set | species | queries | top-1 | top-5 | top-10 | mAP |\n|---|---|---|---|---|---|---|---|"
)


def tables(report: Mapping[str, Any]) -> str:
    names = {"start": f"ImageNet start (`{START}`)", "trained": "`resight-base`"}
    lines = [
        "Paper split (test: every test photo; unseen: test individuals never seen in training):",
        "",
        HEADER,
    ]
    for set_name in ("test", "unseen"):
        for species in report["split"]["species"]["test"]:
            for model in ("start", "trained"):
                m = report["results"][model][set_name].get(species)
                if m:
                    lines.append(_row(names[model], set_name, species, m))
    for loso in report.get("leave_one_out", []):
        held = loso["held_out"]
        others = ", ".join(loso["trained_on"])
        lines += ["", f"Leave `{held}` out (trained on {others} only; scored on {held}):", "", HEADER]
        for set_name in ("test", "all"):
            for model in ("start", "trained"):
                m = loso[model][set_name].get(held)
                if m:
                    label = names["start"] if model == "start" else f"trained without {held}"
                    lines.append(_row(label, set_name, held, m))
    return "\n".join(lines)


def card(report: Mapping[str, Any], meta: Mapping[str, str], weights_file: Path) -> str:
    data = "\n".join(f"- `{d['name']}`: {d['licence']}" for d in report["datasets"])
    counts = "\n".join(
        f"- {s}: {c['photos']} photos of {c['individuals']} individuals"
        for s, c in report["split"]["species"]["train"].items()
    )
    c = report["config"]
    recipe = (
        f"sub-center ArcFace (k={c['subcenters']}, scale {c['scale']}) with dynamic margins "
        f"[{c['margin_min']}, {c['margin_max']}], species-balanced sampling (weight "
        f"n_species^-{c['species_balance']}), colour jitter, sharpening, CLAHE, shift/scale/rotation, flips; "
        f"AdamW lr {c['lr']} (backbone x {c['backbone_lr_factor']}), batch {c['batch_size']}, "
        f"{c['epochs']} epochs, seed {c['seed']}; the shipped weights are {report['mix']} x the trained "
        f"network + {1 - report['mix']:.2g} x its ImageNet start, weight for weight (WiSE-FT, Wortsman et "
        "al. 2022)"
    )
    return f"""# Model card: `resight-base`

The embedding model a new Resight install starts with: one re-identification network for every species,
trained by the platform's own retraining code (`ml_service.retrain` -> `ml_service.training`) on openly
licensed, individually labelled photos. It ranks candidates until curated photos of your own animals retrain
it (the platform does that by itself, `/models/`).

- Version key: `{BASE_MODEL_NAME}@{meta["version"]}` (a space of its own: its vectors never mix with another
  model's)
- File: `ml_service/models/resight-base.safetensors`, fp16, {weights_file.stat().st_size / 1e6:.1f} MB,
  sha256 `{file_sha256(weights_file)}`
- Architecture: torchvision MobileNetV2 features (ImageNet start, BSD-3-Clause) -> GeM (p=3) -> BatchNorm,
  {meta["image_size"]} px input, 1,280-d, cosine similarity, test-time flip averaging
- Training: {recipe}; {report["training_seconds"]} s on {report["device"]}
- fp16 against the fp32 run: lowest cosine of one photo's two vectors {report["fp16_min_cosine"]:.5f}

## Data and licences

{data}

The weights are derived from these datasets and are published under CC BY 4.0 (the most demanding of the
licences above): credit DogFaceNet (Mougeot, Li, Jia, PRICAI 2019) and gpriamo/Cat-Faces-Identification.

Training photos (the MiewID paper's split: at most 10 test photos per individual, one per encounter; half of
the test individuals never seen in training):

{counts}

## Measured

One-vs-all (each test photo a query against all others), as `python -m ml_service.evaluation` computes it.
{tables(report)}

Two species only: a start, not MiewID (64 species). `catfaces` has 23 individuals, so its paper-split test set
is a handful of animals; its "all" rows (371 photos) are the steadier figure.

## Rebuild

```sh
{report["command"]}
```

Deterministic for its seed on one device. It trains the model, the leave-one-species-out models, scores all
of them and rewrites this card and the weights file (`--ship`); `--no-leave-out` skips the extra models.
"""


# --- the command -------------------------------------------------------------------------------------------


def share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def overrides(entries: Sequence[str]) -> dict[str, Any]:
    """`FIELD=VALUE` settings of `training.TrainConfig`, each value parsed as its field's type."""
    fields = {name: type(value) for name, value in asdict(RECIPE).items()}
    parsed: dict[str, Any] = {}
    for entry in entries:
        name, _, value = entry.partition("=")
        if name not in fields:
            raise SystemExit(
                f"--set {entry}: no training setting {name!r}; known: {', '.join(sorted(fields))}"
            )
        kind = fields[name]
        parsed[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_service.base_model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("datasets", type=Path, nargs="+", help="folders laid out like ../shared/datasets/*")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, models, report)")
    parser.add_argument("--ship", action="store_true", help="write the weights and card into the source tree")
    parser.add_argument("--no-leave-out", action="store_true", help="skip the leave-one-species-out models")
    parser.add_argument("--licence", action="append", default=[], metavar='NAME="licence"')
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs)
    parser.add_argument("--image-size", type=int, default=RECIPE.image_size)
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    parser.add_argument("--lr", type=float, default=RECIPE.lr)
    parser.add_argument("--species-balance", type=float, default=RECIPE.species_balance)
    parser.add_argument("--seed", type=int, default=RECIPE.seed)
    parser.add_argument(
        "--mix", type=share, default=MIX, help="share of the trained weights against ImageNet, 0 to 1"
    )
    parser.add_argument("--workers", type=int, default=0, help="threads decoding the training cache")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other training setting (ml_service.training.TrainConfig), e.g. backbone_lr_factor=0.2",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    licences = dict(entry.split("=", 1) for entry in args.licence)
    chosen = datasets_of(args.datasets, licences)
    config = training.TrainConfig(
        **{
            **asdict(RECIPE),
            "epochs": args.epochs,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "species_balance": args.species_balance,
            "seed": args.seed,
            "workers": args.workers,
            "device": args.device,
            **overrides(args.set),
        }
    )
    items = [item for d in chosen for item in evaluation.read_dataset(d.folder)]

    def log(e: training.EpochLog) -> None:
        print(
            f"  epoch {e.epoch}/{config.epochs}  loss {e.loss:.3f}  {e.seconds:.0f} s "
            f"({e.images_per_second:.1f} images/s)",
            flush=True,
        )

    print(f"training {BASE_MODEL_NAME} on {', '.join(d.name for d in chosen)}", flush=True)
    began = time.monotonic()
    split = splits.paper_split(items, 0.2, args.seed)
    history = training.train(
        retrain.samples_of(split.train, sides_apart=False), args.out / "all", config, log=log
    )
    mixed = mix_with_start(args.out / "all" / training.EXPORT, args.mix)
    start, trained = get_model(START), FineTuned(mixed)  # one of each: their networks load once
    result = retrain.Result(split, history, trained)
    result.scores = {"start": retrain.score(start, split), "trained": retrain.score(trained, split)}
    print(retrain.format_table(result, {"start": START, "trained": BASE_MODEL_NAME}), flush=True)
    trained_in = round(sum(e.seconds for e in result.history.epochs))
    species = sorted({i.species for i in items})
    loso = []
    if not args.no_leave_out and len(species) > 1:
        for held_out in species:
            print(f"leaving {held_out} out", flush=True)
            loso.append(
                leave_one_out(
                    split, items, held_out, args.out / f"without-{held_out}", config, args.mix, start, log
                )
            )
    target = WEIGHTS if args.ship else args.out / WEIGHTS.name
    device = training.pick_device(config.device)
    meta = write_weights(
        mixed,
        target,
        {"trained_on": ", ".join(f"{d.name} ({d.licence})" for d in chosen), "licence": "CC-BY-4.0"},
    )
    command = shlex.join(["python", "-m", "ml_service.base_model", *(sys.argv[1:] if argv is None else argv)])
    report: dict[str, Any] = {
        "command": command,
        "datasets": [{"name": d.name, "licence": d.licence} for d in chosen],
        "config": result.history.config,
        "device": f"{device.type} ({torch.get_num_threads()} threads)"
        if device.type == "cpu"
        else device.type,
        "training_seconds": trained_in,
        "wall_seconds": round(time.monotonic() - began),
        "split": {
            "species": {
                "train": retrain.species_counts(split.train),
                "test": retrain.species_counts(split.test),
            }
        },
        "results": result.scores,
        "leave_one_out": loso,
        "fp16_min_cosine": fp16_agreement(mixed, target, split.test[:64]),
        "mix": args.mix,
        "weights": meta,
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    card_path = CARD if args.ship else args.out / CARD.name
    card_path.write_text(card(report, meta, target))
    print(tables(report))
    print(f"weights: {target} ({meta['version']}); card: {card_path}; report: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

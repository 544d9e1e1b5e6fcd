"""Global embedding models: one interface, a registry of versions.

Every model has an identity (`name`, `version`, `dim`), a lazy `load()`, and a batched `predict()` returning
L2-normalised float32 vectors. Input size and normalisation belong to the model version, so two versions never
mix in one search (the platform stores the key with every vector).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import Image

from ml_service import onnx_runtime, weights
from ml_service.identity import Versioned
from ml_service.imaging import Crop, masked_pixels
from ml_service.inference import load_checkpoint

# torch is imported where a network is built or run, never at import: the web tier and beat name models
# (their keys, dimensions and the registry) without loading torch (about 0.6 GB per process).
if TYPE_CHECKING:
    import torch
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, crops: Sequence[Crop]) -> torch.Tensor:
        import torch

        arrays = []
        for c in crops:
            image = masked_pixels(c).resize((self.size, self.size), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.float32) / 255.0)
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std


class EmbeddingModel(Versioned, ABC):
    """A global embedding model version. Subclasses build `self.network` in `_build()`."""

    name: str
    version: str
    dim: int
    preprocessing: Preprocessing
    flip_average = True  # embed the crop and its mirror image, average: +~1 point top-1 on dog faces
    # NHWC is what oneDNN's convolutions want on CPU (benchmarks/embedding.py measures it against NCHW).
    channels_last = True
    # torch.compile (inductor): 1.6x the images/s of eager channels-last for MobileNetV2 on this CPU, after a
    # one-off compile of about 35 s per process and a C++ compiler at run time; so opt-in (settings).
    compiled = False
    # "onnx": the network exported once to ONNX (cached in `onnx_cache`) and run by ONNX Runtime, the fastest
    # CPU path measured (benchmarks/embedding.py); "torch": eager or compiled PyTorch, the path for GPUs and
    # bf16; "auto": ONNX Runtime for fp32 on a machine without CUDA, else torch.
    runtime = "auto"
    onnx_cache: Path | None = None

    def __init__(self, *, bf16: bool = False) -> None:
        self.bf16 = bf16  # bfloat16 autocast (torch runtime only); fp32 otherwise
        self._network: nn.Module | None = None
        self._run: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._lock = threading.RLock()

    @property
    def key(self) -> str:
        # bf16 vectors differ from fp32 ones in the third decimal: a space never mixes the two.
        return super().key + ("+bf16" if self.bf16 else "")

    @abstractmethod
    def _build(self) -> nn.Module: ...

    def trained_weights(self) -> tuple[str, Path] | None:
        """(backbone, file) when this version is a network trained here (`EmbeddingNetwork`), so training may
        continue from it; None for published networks of other shapes."""
        return None

    def load(self) -> nn.Module:
        import torch

        with self._lock:
            if self._network is None:
                network = self._build().eval()
                if self.channels_last:
                    network = network.to(memory_format=torch.channels_last)
                if self.compiled:
                    # dynamic: batch sizes vary, and each new size would otherwise compile again.
                    network = cast("nn.Module", torch.compile(network, dynamic=True))
                self._network = network
            return self._network

    def resolved_runtime(self) -> str:
        if self.runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"Unknown embedding runtime {self.runtime!r}; known: auto, onnx, torch")
        if self.runtime != "auto":
            return self.runtime
        import torch

        onnx_fits = not self.bf16 and not self.compiled and not torch.cuda.is_available()
        return "onnx" if onnx_fits and importlib.util.find_spec("onnxruntime") is not None else "torch"

    def runner(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The network as a function of a normalised NCHW fp32 batch, on the chosen runtime (built once)."""
        with self._lock:
            if self._run is None:
                self._run = self._onnx_runner() if self.resolved_runtime() == "onnx" else self._torch_runner()
            return self._run

    def _torch_runner(self) -> Callable[[torch.Tensor], torch.Tensor]:
        import torch

        network = self.load()

        def run(batch: torch.Tensor) -> torch.Tensor:
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                return network(batch).float()

        return run

    def _onnx_runner(self) -> Callable[[torch.Tensor], torch.Tensor]:
        import torch

        if self.bf16:
            raise ValueError("The ONNX runtime runs fp32 networks; use runtime 'torch' for bf16")
        session = onnx_runtime.cpu_session(self.exported_onnx())

        def run(batch: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"pixels": batch.numpy()})[0])

        return run

    def onnx_path(self, network: nn.Module) -> Path:
        """Where `network`'s export lives: named by the version key and a digest of the weights and torch
        version, so new weights (a fine-tuned run, an upgrade) never reuse a stale file."""
        import torch

        digest = hashlib.sha256(f"{torch.__version__}:{self.preprocessing.size}".encode())
        for name, tensor in network.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        folder = self.onnx_cache or Path(
            os.environ.get("RESIGHT_ONNX_CACHE", Path.home() / ".cache" / "resight" / "onnx")
        )
        safe_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.key)
        return Path(folder) / f"{safe_key}-{digest.hexdigest()[:16]}.onnx"

    def exported_onnx(self) -> Path:
        """The network as an ONNX file, exported once and then reused (by every worker process: written under
        a temporary name and renamed, so a reader never sees half a file)."""
        import torch

        network = self._build().eval()
        path = self.onnx_path(network)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The exporter's graph passes log hundreds of INFO lines per export into the worker's log.
        for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        size = self.preprocessing.size
        program = torch.onnx.export(
            network,
            (torch.zeros(2, 3, size, size),),
            input_names=["pixels"],
            output_names=["vectors"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
        if program is None:
            raise RuntimeError(f"ONNX export of {self.key} produced nothing")
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        program.save(str(partial))
        os.replace(partial, path)
        return path

    def predict(self, crops: Sequence[Crop], batch_size: int = 32) -> np.ndarray:
        import torch

        network = self.runner()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                batch = self.preprocessing(crops[start : start + batch_size])
                vectors = network(batch)
                if self.flip_average:
                    vectors = vectors + network(torch.flip(batch, dims=[3]))
                outputs.append(torch.nn.functional.normalize(vectors, dim=1).numpy())
        if not outputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(outputs).astype(np.float32)


class MobileNetV2ImageNet(EmbeddingModel):
    """torchvision's ImageNet MobileNetV2 features + GeM: the offline starting model (DESIGN.md section 4)."""

    name = "imagenet-mobilenetv2"
    version = "gem3-flip-224-v1"
    dim = 1280
    preprocessing = Preprocessing(size=224)

    def __init__(self, weights_path: Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.weights_path = weights_path

    def _build(self) -> nn.Module:
        import torch
        from torchvision.models import mobilenet_v2

        from ml_service.networks import GeM

        network = mobilenet_v2(weights=None)
        state = load_checkpoint(self.weights_path or weights.mobilenet_v2_imagenet())
        network.load_state_dict(state)
        return torch.nn.Sequential(network.features, GeM())


class FineTuned(EmbeddingModel):
    """A network trained by `ml_service.training` (its exported `model.pt`): a version of its own, named by
    its backbone and versioned by the run (the folder the file is in)."""

    def __init__(self, path: str | Path, version: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path = Path(path)
        self._payload = load_checkpoint(self.path)
        self.name = f"finetuned-{self._payload['backbone']}"
        self.version = version or self.path.parent.name
        self.preprocessing = Preprocessing(size=int(self._payload["image_size"]))
        self.flip_average = bool(self._payload.get("flips", True))  # not when sides are separate identities
        self.dim = int(self._payload["state"]["bn.weight"].shape[0])

    def _build(self) -> nn.Module:
        from ml_service.networks import EmbeddingNetwork

        network = EmbeddingNetwork(self._payload["backbone"], pretrained=False)
        network.load_state_dict(self._payload["state"])
        return network

    def trained_weights(self) -> tuple[str, Path] | None:
        return str(self._payload["backbone"]), self.path


MIEWID_REPO = "conservationxlabs/miewid-msv3"


def _download_miewid() -> Path:
    """Fetch the published weights (a real user's one network access); honours HF_HUB_OFFLINE."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    from ml_service.networks import MIEWID_FILES

    for filename in MIEWID_FILES:
        try:
            return Path(hf_hub_download(MIEWID_REPO, filename))
        except RemoteEntryNotFoundError:
            continue  # the repository stores the other format
        except LocalEntryNotFoundError as exc:
            raise weights.WeightsMissing(
                f"MiewID weights are not cached and {MIEWID_REPO} cannot be reached (offline). Download "
                "model.safetensors once and set RESIGHT_MIEWID_WEIGHTS to its path."
            ) from exc
    raise weights.WeightsMissing(f"{MIEWID_REPO} has none of {MIEWID_FILES}")


class MiewIdMsv3(EmbeddingModel):
    """MiewID msv3 (multi-species re-identification, Conservation X Labs): 440 px, 2,152-d.

    Weights: `RESIGHT_MIEWID_WEIGHTS` (a local file or folder) or, online, Hugging Face `conservationxlabs/
    miewid-msv3` on first use."""

    name = "miewid-msv3"
    version = "hf-440-v1"
    dim = 2152
    preprocessing = Preprocessing(size=440)
    flip_average = False  # MiewID is trained with flips as augmentation, not as test-time averaging

    def __init__(self, weights_path: str | Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.weights_path = weights_path or os.environ.get("RESIGHT_MIEWID_WEIGHTS") or None

    def _build(self) -> nn.Module:
        from ml_service.networks import MiewIdNetwork, miewid_state

        network = MiewIdNetwork()
        source = self.weights_path or _download_miewid()
        missing, unexpected = network.load_state_dict(miewid_state(source), strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"MiewID weights do not fit the architecture: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        return network


BASE_MODEL_NAME = "resight-base"
BASE_WEIGHTS = Path(__file__).parent / "models" / f"{BASE_MODEL_NAME}.safetensors"


class ResightBase(EmbeddingModel):
    """The multi-species base model shipped with the project (`ml_service.base_model` trains it; its model
    card is `models/resight-base.md`): fp16 weights in a safetensors file whose metadata carries the
    version, backbone and input size. Runs in fp32 (the half-precision weights are widened on load)."""

    name = BASE_MODEL_NAME

    def __init__(self, weights_path: str | Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        from safetensors import safe_open

        self.path = Path(weights_path or os.environ.get("RESIGHT_BASE_WEIGHTS") or BASE_WEIGHTS)
        if not self.path.is_file():
            raise weights.WeightsMissing(
                f"{self.path}: the resight-base weights are missing; rebuild them with "
                "python -m ml_service.base_model (README, 'Base model')"
            )
        with safe_open(str(self.path), framework="numpy") as handle:  # numpy: no torch to read a name
            self.metadata: dict[str, str] = handle.metadata() or {}
            dim = handle.get_slice("bn.weight").get_shape()[0]
        if self.metadata.get("name") != BASE_MODEL_NAME or "version" not in self.metadata:
            raise weights.WeightsMissing(f"{self.path} is not a {BASE_MODEL_NAME} weights file")
        self.version = self.metadata["version"]
        self.dim = int(dim)
        self.preprocessing = Preprocessing(size=int(self.metadata["image_size"]))
        self.flip_average = self.metadata.get("flips", "true") == "true"

    def _build(self) -> nn.Module:
        from ml_service.networks import EmbeddingNetwork, trained_state

        backbone, state = trained_state(self.path)
        network = EmbeddingNetwork(backbone, pretrained=False)
        network.load_state_dict(state)
        return network

    def trained_weights(self) -> tuple[str, Path] | None:
        return self.metadata["backbone"], self.path


REGISTRY: dict[str, Callable[[], EmbeddingModel]] = {
    ResightBase.name: ResightBase,
    MobileNetV2ImageNet.name: MobileNetV2ImageNet,
    MiewIdMsv3.name: MiewIdMsv3,
}
DEFAULT_MODEL = ResightBase.name


def get_model(name: str = DEFAULT_MODEL, *, bf16: bool = False) -> EmbeddingModel:
    """A registered model by name, or a fine-tuned one by the path of its `model.pt`."""
    if name.endswith(".pt") and Path(name).is_file():
        model: EmbeddingModel = FineTuned(name)
        model.bf16 = bf16
        return model
    try:
        model = REGISTRY[name]()
    except KeyError:
        raise KeyError(f"Unknown embedding model {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    model.bf16 = bf16
    return model

"""The torch networks behind the embedding models (`ml_service.embedding`): imported only where a model is
built or trained, so that the platform's web tier and beat, which name models but never run them, do not load
torch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ml_service import weights

MIEWID_FILES = ("model.safetensors", "pytorch_model.bin")


class GeM(nn.Module):
    """Generalised-mean pooling (p=3 as in MiewID): between average (p=1) and max pooling."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A mean over the spatial axes rather than avg_pool2d with the input's size as kernel: the same
        # numbers, and a graph with no shape-dependent constants (ONNX export).
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


class EmbeddingNetwork(nn.Module):
    """Backbone features -> GeM -> BatchNorm, the shape of every trainable model here: torchvision's ImageNet
    MobileNetV2 (`mobilenetv2`, offline) or a timm backbone by name (`efficientnetv2_rw_m` for MiewID's)."""

    def __init__(self, backbone: str, pretrained: bool = True) -> None:
        super().__init__()
        if backbone == "mobilenetv2":
            from torchvision.models import mobilenet_v2

            network = mobilenet_v2(weights=None)
            if pretrained:
                state = torch.load(weights.mobilenet_v2_imagenet(), map_location="cpu", weights_only=True)
                network.load_state_dict(state)
            self.backbone: nn.Module = network.features
            dim = 1280
        else:
            import timm

            # timm's published weights download on first use (a real user's one network access).
            self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0, global_pool="")
            dim = int(self.backbone.num_features)  # type: ignore[arg-type]
        self.pool = GeM()
        self.bn = nn.BatchNorm1d(dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pool(self.backbone(x)))


class MiewIdNetwork(nn.Module):
    """The MiewID architecture: timm `efficientnetv2_rw_m` features, GeM pooling, BatchNorm -> 2,152-d."""

    def __init__(self, backbone: str = "efficientnetv2_rw_m") -> None:
        super().__init__()
        import timm

        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
        self.global_pool = GeM()
        self.bn = nn.BatchNorm1d(int(self.backbone.num_features))  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.global_pool(self.backbone(x)))


def miewid_state(source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a downloaded MiewID (a .safetensors/.bin file, or a folder holding one), with the
    training-only ArcFace head dropped and alternative pooling names mapped."""
    path = Path(source)
    if path.is_dir():
        found = [path / f for f in MIEWID_FILES if (path / f).is_file()]
        if not found:
            raise weights.WeightsMissing(f"no {' or '.join(MIEWID_FILES)} in {path}")
        path = found[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in state.items()}
    renamed = {}
    for key, value in state.items():
        if key.startswith(("final.", "fc.", "head.", "arcface.")):
            continue  # the sub-center ArcFace head only matters in training
        renamed[key.replace("gem.", "global_pool.", 1) if key.startswith("gem.") else key] = value
    return renamed


def trained_state(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """The backbone name and fp32 state dict of an `EmbeddingNetwork` saved by training (a run's `model.pt`)
    or shipped (the base model's safetensors, fp16)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as handle:
            backbone = (handle.metadata() or {}).get("backbone", "")
        state = load_file(str(path))
    else:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        backbone, state = str(payload["backbone"]), payload["state"]
    return backbone, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

"""The training input at the speed of the hardware: decode once, augment on the device.

Decoding a JPEG and augmenting it with PIL/OpenCV per image and per step bound training on a GPU to about
1,000 images/s with 14 loader processes, while the same GPU runs the network far faster. Here each training
image is decoded once, resized to a little more than the network's input (`cache_size`: room for the zoom of
the affine augmentation without upsampling) and kept as uint8 in a memory-mapped file of the run folder
(`DecodedCache`: a resumed run reuses it). Every step then gathers its batch from the cache (uint8, a quarter
of the bytes of float pixels to move to the device) and augments the whole batch on the training device with
tensor ops (`DeviceAugment`): one affine resampling (rotation, scale, shift, flip, and the resize to the input
size together), CLAHE on the luma, sharpening, and colour jitter as one 3x3 colour matrix per image.

Every random draw comes from a `torch.Generator` on the CPU (a few numbers per image), so a seed gives the
same augmentations on the CPU and on a GPU, and a checkpoint resumes them exactly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from kornia.enhance import equalize_clahe
from PIL import Image
from torch import nn

from ml_service.imaging import load_oriented

MARGIN = 1.15  # the cache's side over the input's: the affine zoom (scale up to 1.15) keeps full resolution
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's and torchvision's grayscale


def cache_size(image_size: int) -> int:
    return round(image_size * MARGIN)


def decode(path: Path, size: int) -> np.ndarray:
    """One training image as the cache stores it: EXIF-oriented RGB resized to size x size (bilinear with
    PIL's antialiasing, as `v2.Resize` on a PIL image), uint8 HWC."""
    image = load_oriented(path)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


class DecodedCache:
    """The training images decoded once: a uint8 (N, size, size, 3) memory map `decoded-<size>.u8` in the run
    folder, with `decoded-<size>.json` naming the files it holds (both written under temporary names and
    renamed when complete, so a run killed while building it builds it again, and a resumed run reuses it)."""

    def __init__(self, folder: Path, paths: Sequence[Path], size: int, threads: int = 1) -> None:
        if not paths:
            raise ValueError("No images to decode: the cache needs at least one.")
        folder.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.data_path = folder / f"decoded-{size}.u8"
        self.index_path = folder / f"decoded-{size}.json"
        names = [str(p) for p in paths]
        shape = (len(names), size, size, 3)
        if not self._matches(names, shape):
            self._build(paths, shape, threads)
            self.index_path.write_text(json.dumps({"size": size, "paths": names}))
        self.array: np.ndarray = np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=shape)

    def _matches(self, names: list[str], shape: tuple[int, ...]) -> bool:
        if not (self.index_path.is_file() and self.data_path.is_file()):
            return False
        index = json.loads(self.index_path.read_text())
        return bool(index.get("paths") == names and self.data_path.stat().st_size == math.prod(shape))

    def _build(self, paths: Sequence[Path], shape: tuple[int, ...], threads: int) -> None:
        self.index_path.unlink(missing_ok=True)  # the index marks a complete cache: gone while rebuilding
        partial = self.data_path.with_name(f".{self.data_path.name}.{os.getpid()}")
        target = np.memmap(partial, dtype=np.uint8, mode="w+", shape=shape)
        _decode_into(target, paths, self.size, threads)
        target.flush()
        del target  # closes the map before the rename
        os.replace(partial, self.data_path)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """The images at `indices`, uint8 (B, size, size, 3) on the CPU."""
        return torch.from_numpy(np.ascontiguousarray(self.array[np.asarray(indices, dtype=np.int64)]))

    def remove(self) -> None:
        """Delete the files (a finished run needs them no more)."""
        del self.array
        self.index_path.unlink(missing_ok=True)
        self.data_path.unlink(missing_ok=True)


def _decode_into(target: np.ndarray, paths: Sequence[Path], size: int, threads: int) -> None:
    def fill(i: int) -> None:
        target[i] = decode(paths[i], size)

    # Pillow releases the GIL while it decodes and resizes: threads decode in parallel.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(fill, range(len(paths))))


class DeviceAugment:
    """The training augmentations on a batch of cached uint8 images, on whatever device the batch is on.

    Per image, as the per-image PIL/OpenCV pipeline (`ml_service.training.transforms`) draws them: an affine
    map (rotation within +-15 degrees, scale 0.85-1.15, shift within 8% of the side, a horizontal flip half of
    the time unless `flips` is off) resampled straight to `size` x `size`; CLAHE (clip 2, 8x8 tiles) on the
    luma with probability 0.3; PIL's sharpening kernel with probability 0.3; colour jitter (brightness and
    contrast 0.7-1.3, saturation 0.8-1.2, hue within 0.05 of a turn) with probability 0.7; then the ImageNet
    normalisation. Output: float32 (B, 3, size, size), channels-last."""

    def __init__(
        self,
        size: int,
        flips: bool,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        degrees: float = 15.0,
        translate: float = 0.08,
        scale: tuple[float, float] = (0.85, 1.15),
        p_clahe: float = 0.3,
        p_sharpen: float = 0.3,
        p_jitter: float = 0.7,
        jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.2, 0.05),
    ) -> None:
        self.size, self.flips = size, flips
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.p_clahe, self.p_sharpen, self.p_jitter, self.jitter = p_clahe, p_sharpen, p_jitter, jitter

    def __call__(self, images: torch.Tensor, generator: torch.Generator, train: bool = True) -> torch.Tensor:
        """`images`: uint8 (B, H, W, 3) on the training device; `train=False` only resizes and normalises."""
        device, n = images.device, images.shape[0]
        x = images.permute(0, 3, 1, 2).float()
        theta = self._affine(n, generator) if train else _identity(n)
        grid = nn.functional.affine_grid(theta.to(device), [n, 3, self.size, self.size], align_corners=False)
        x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = x.div_(255.0)  # after the resampling: fewer pixels (bilinear weights sum to 1, so it commutes)
        if train:
            clahe = torch.rand(n, generator=generator) < self.p_clahe
            sharpen = torch.rand(n, generator=generator) < self.p_sharpen
            matrix = self._jitter(n, generator)
            x = _where(clahe, _clahe_luma, x)
            x = _where(sharpen, _sharpen, x)
            x = _colour(x, matrix.to(device))
        x = x.sub_(self.mean.to(device)).div_(self.std.to(device))
        return x.contiguous(memory_format=torch.channels_last)

    def _affine(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Per image, the map from output to input coordinates (normalised to [-1, 1]) for `affine_grid`."""

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

        angle = torch.deg2rad(uniform(-self.degrees, self.degrees))
        scale = uniform(*self.scale)
        shift = torch.stack([uniform(-self.translate, self.translate) for _ in range(2)], dim=1) * 2
        flip = torch.rand(n, generator=generator) < 0.5
        # Forward map: out = scale * R(angle) @ in + shift; the grid wants its inverse.
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        inverse = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # R(-a) / s
        offset = -(inverse @ shift[:, :, None])
        if self.flips:  # the output mirrored: its x reads the transformed image at -x
            inverse[:, :, 0] *= torch.where(flip, -1.0, 1.0)[:, None].double()
        return torch.cat([inverse, offset], dim=2).float()

    def _jitter(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Per image a 3x4 colour map [M | c]: contrast about the image's mean grey is the 4th column's weight
        (applied in `_colour`), brightness, saturation and hue are linear, so the whole jitter is one pass."""
        b, c, s, h = self.jitter
        on = torch.rand(n, generator=generator) < self.p_jitter

        def factor(spread: float, centre: float) -> torch.Tensor:
            drawn = centre - spread + 2 * spread * torch.rand(n, generator=generator)
            return torch.where(on, drawn, torch.full_like(drawn, centre))

        brightness, contrast, saturation, hue = factor(b, 1.0), factor(c, 1.0), factor(s, 1.0), factor(h, 0.0)
        luma = torch.tensor(LUMA)
        grey = luma[None, :].expand(3, 3)  # each channel := the luma
        sat = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * grey
        out = _hue_rotation(hue) @ sat * (brightness * contrast)[:, None, None]
        # The 4th column scales the image's mean luma: contrast blends toward it (after brightness).
        mean_weight = ((1 - contrast) * brightness)[:, None, None].expand(n, 3, 1)
        return torch.cat([out, mean_weight], dim=2)


def _identity(n: int) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)


def _where(chosen: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply `op` to the chosen images of the batch only (in place: `x` is the batch this call made)."""
    index = torch.nonzero(chosen).flatten().to(x.device)
    if len(index) > 0:
        x[index] = op(x[index])
    return x


def _luma(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _clahe_luma(x: torch.Tensor) -> torch.Tensor:
    """CLAHE on the luma, the chroma kept (the per-image path equalises LAB's lightness with OpenCV)."""
    luma = _luma(x)
    equalised = equalize_clahe(luma, clip_limit=2.0, grid_size=(8, 8))
    return (x + (equalised - luma)).clamp_(0.0, 1.0)


def _sharpen(x: torch.Tensor) -> torch.Tensor:
    """PIL's ImageFilter.SHARPEN (32 at the centre, -2 around, over 16) = (17 x - the 3x3 sum) / 8, the sum
    by average pooling: a depthwise convolution is many times slower on the CPU."""
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    box = nn.functional.avg_pool2d(padded, 3, stride=1)
    return ((17.0 * x - 9.0 * box) / 8.0).clamp_(0.0, 1.0)


def _hue_rotation(hue: torch.Tensor) -> torch.Tensor:
    """Per image, the RGB matrix turning the hue by `hue` of a full turn (a rotation of the YIQ chroma plane:
    the luma and the greys stay)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    angle = hue * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rotate = torch.stack(
        [
            torch.stack([one, zero, zero], 1),
            torch.stack([zero, cos, -sin], 1),
            torch.stack([zero, sin, cos], 1),
        ],
        1,
    )
    return from_yiq @ rotate @ to_yiq


def _colour(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """x := M x + w * mean luma, per image (`matrix` is [M | w], (B, 3, 4))."""
    mean = _luma(x).mean(dim=(1, 2, 3))  # (B,)
    out = torch.einsum("bij,bjhw->bihw", matrix[:, :, :3], x)
    out = out + (matrix[:, :, 3] * mean[:, None])[:, :, None, None]
    return out.clamp_(0.0, 1.0)

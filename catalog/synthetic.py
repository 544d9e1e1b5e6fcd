"""Synthetic photos of spotted animals, drawn by code, for the demo catalogue and the tests.

Each individual has its own spot pattern (its identity); each photo shows it under a different pose, scale,
light and background, the way camera traps see the same animal on different nights. No real photos are
shipped with the code, and nothing is downloaded.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

Point = tuple[float, float]


@dataclass(frozen=True)
class Pattern:
    """An individual's coat: spot centres and radii in body coordinates (unit ellipse), and colours."""

    spots: tuple[tuple[float, float, float], ...]
    coat: tuple[int, int, int]
    spot_colour: tuple[int, int, int]


@dataclass(frozen=True)
class Photo:
    jpeg: bytes
    box: tuple[int, int, int, int]  # x, y, w, h of the animal in pixels
    facing: str  # "left" or "right"
    mask: Image.Image  # "L" image, 255 on the animal: ground truth for segmentation tests


def make_pattern(seed: int, n_spots: int = 38) -> Pattern:
    rng = random.Random(seed)
    spots: list[tuple[float, float, float]] = []
    while len(spots) < n_spots:
        x, y = rng.uniform(-0.95, 0.95), rng.uniform(-0.9, 0.9)
        if x * x + y * y < 0.85:
            spots.append((x, y, rng.uniform(0.035, 0.09)))
    coat = (rng.randint(190, 225), rng.randint(140, 170), rng.randint(60, 95))
    return Pattern(tuple(spots), coat, (rng.randint(25, 45), rng.randint(20, 35), rng.randint(10, 25)))


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    base = (rng.randint(70, 120), rng.randint(95, 140), rng.randint(45, 80))
    img = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(img)
    for _ in range(900):  # grass and stones
        x, y = rng.randrange(w), rng.randrange(h)
        shade = rng.randint(-35, 35)
        colour = tuple(max(0, min(255, c + shade)) for c in base)
        if rng.random() < 0.85:
            draw.line([(x, y), (x + rng.randint(-4, 4), y - rng.randint(6, 22))], fill=colour, width=1)
        else:
            r = rng.randint(3, 12)
            draw.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def render(pattern: Pattern, seed: int, size: tuple[int, int] = (800, 600)) -> Photo:
    """One photo of the individual with `pattern`; `seed` picks pose, light and background."""
    rng = random.Random(seed)
    w, h = size
    img = _background(rng, size)
    mask = Image.new("L", size, 0)
    draw = _Both(ImageDraw.Draw(img), ImageDraw.Draw(mask))
    scale = rng.uniform(0.28, 0.38) * w / 2
    cx, cy = rng.uniform(0.38, 0.62) * w, rng.uniform(0.45, 0.6) * h
    angle = math.radians(rng.uniform(-18, 18))
    facing = rng.choice(["left", "right"])
    flip = -1.0 if facing == "left" else 1.0
    squash = rng.uniform(0.45, 0.55)  # body height relative to length

    def to_px(bx: float, by: float) -> Point:
        x, y = bx * flip * scale, by * squash * scale
        return (
            cx + x * math.cos(angle) - y * math.sin(angle),
            cy + x * math.sin(angle) + y * math.cos(angle),
        )

    shadow = tuple(int(c * 0.75) for c in pattern.coat)
    for leg_x in (-0.65, -0.4, 0.45, 0.7):  # legs, then body over them
        top, foot = to_px(leg_x, 0.6), to_px(leg_x + 0.03, 1.9)
        draw.line([top, foot], fill=shadow, width=max(4, int(scale * 0.11)))
    tail = [to_px(-1.0 + 0.0, 0.0), to_px(-1.35, 0.5), to_px(-1.6, 1.1)]
    draw.line(tail, fill=pattern.coat, width=max(3, int(scale * 0.06)))
    outline = [to_px(math.cos(t) * 1.0, math.sin(t) * 1.0) for t in [i * math.pi / 36 for i in range(72)]]
    draw.polygon(outline, fill=pattern.coat)
    head_c = to_px(1.18, -0.55)
    hr = scale * 0.24
    draw.ellipse([head_c[0] - hr, head_c[1] - hr, head_c[0] + hr, head_c[1] + hr], fill=pattern.coat)
    for sx, sy, sr in pattern.spots:
        ring = [
            to_px(sx + math.cos(t) * sr, sy + math.sin(t) * sr / squash * 0.6)
            for t in [i * math.pi / 8 for i in range(16)]
        ]
        draw.polygon(ring, fill=pattern.spot_colour)

    xs = [p[0] for p in outline] + [head_c[0] - hr, head_c[0] + hr, to_px(-1.6, 1.1)[0]]
    ys = [p[1] for p in outline] + [head_c[1] - hr, to_px(0.7, 1.9)[1], to_px(-0.65, 1.9)[1]]
    x0, y0 = max(0, int(min(xs)) - 4), max(0, int(min(ys)) - 4)
    x1, y1 = min(w, int(max(xs)) + 4), min(h, int(max(ys)) + 4)

    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.65, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.15))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=88)
    return Photo(out.getvalue(), (x0, y0, x1 - x0, y1 - y0), facing, mask)


class _Both:
    """Draws each shape on the photo and, in white, on the animal's mask."""

    def __init__(self, photo: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw) -> None:
        self.photo, self.mask = photo, mask

    def line(self, xy: list[Point], fill: tuple[int, ...], width: int) -> None:
        self.photo.line(xy, fill=fill, width=width)
        self.mask.line(xy, fill=255, width=width)

    def polygon(self, xy: list[Point], fill: tuple[int, ...]) -> None:
        self.photo.polygon(xy, fill=fill)
        self.mask.polygon(xy, fill=255)

    def ellipse(self, xy: list[float], fill: tuple[int, ...]) -> None:
        self.photo.ellipse(xy, fill=fill)
        self.mask.ellipse(xy, fill=255)


def with_exif(
    jpeg: bytes, taken_at: datetime | None = None, lat: float | None = None, lon: float | None = None
) -> bytes:
    """Re-save a JPEG with EXIF time and GPS, as a camera would write them."""
    from PIL import ExifTags

    with Image.open(io.BytesIO(jpeg)) as img:
        exif = img.getexif()
        if taken_at is not None:
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken_at.strftime(
                "%Y:%m:%d %H:%M:%S"
            )
            if taken_at.utcoffset() is not None:
                offset = int(taken_at.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
                sign = "+" if offset >= 0 else "-"
                exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.OffsetTimeOriginal] = (
                    f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
                )
        if lat is not None and lon is not None:
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
            gps[ExifTags.GPS.GPSLatitude] = _dms(abs(lat))
            gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
            gps[ExifTags.GPS.GPSLongitude] = _dms(abs(lon))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=95, exif=exif)
        return out.getvalue()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return (float(degrees), float(minutes), seconds)

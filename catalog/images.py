"""Checking uploaded photos and reading what they carry (EXIF time, GPS, orientation).

Pure Pillow; nothing here touches the database or storage, so services decide what to keep.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF from phones, when the pillow-heif wheel is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - the wheel is a dependency, but stays optional at run time
    HEIF_SUPPORTED = False

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"} | (
    {"HEIF": "heic"} if HEIF_SUPPORTED else {}
)
PREVIEW_MAX_SIDE = 1600
THUMBNAIL_MAX_SIDE = 360


class ImageRejected(ValueError):
    """An upload that is not a usable photo. The message is shown to the user as it is."""


@dataclass(frozen=True)
class InspectedImage:
    data: bytes
    sha256: str
    image_format: str
    extension: str
    width: int  # after EXIF orientation
    height: int
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None


def too_large(max_bytes: int) -> str:
    """What every upload path says of a file over the byte limit."""
    size = f"{max_bytes / 1_000_000:.1f} MB" if max_bytes >= 1_000_000 else f"{max_bytes / 1000:.0f} KB"
    return f"The file is larger than the {size} upload limit."


def read_limited(stream: IO[bytes], max_bytes: int) -> bytes:
    """Read at most `max_bytes`; refuse anything longer without reading it all into memory."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRejected(too_large(max_bytes))
    return data


def set_pixel_limit(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb limit the platform's (RESIGHT_MAX_IMAGE_PIXELS): otherwise its
    default (about 89.5 megapixels) silently wins over a higher setting, and every decode in the process
    (renditions, workers reading stored photos) is held to the same limit as uploads."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def probe(data: bytes, *, max_pixels: int) -> str:
    """The image format of `data`, read from its header without decoding the pixels; ImageRejected for
    anything that is not a photo Resight accepts or has more than `max_pixels`. Cheap enough to run
    before a file is even staged."""
    if not data:
        raise ImageRejected("The file is empty.")
    too_many = f"The image has too many pixels; the limit is {max_pixels / 1e6:.0f} megapixels."
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a bomb is an error at any size.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as header:
                image_format = header.format or ""
                pixels = header.width * header.height
        except UnidentifiedImageError as exc:
            raise ImageRejected(
                "The file is not an image Resight can read (JPEG, PNG, WebP or HEIC)."
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(too_many) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(f"The image header cannot be read ({exc}).") from exc
    if image_format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{image_format or 'This'} images are not accepted; use JPEG, PNG, WebP or HEIC.")
    if pixels > max_pixels:
        raise ImageRejected(too_many)
    return image_format


def inspect(data: bytes, *, max_pixels: int) -> InspectedImage:
    """Validate `data` as a photo Resight accepts and read its metadata. Raises ImageRejected."""
    image_format = probe(data, max_pixels=max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()  # structure and checksums (PNG CRCs)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # a full decode: catches truncated and corrupt pixel data
                oriented = ImageOps.exif_transpose(image)
                width, height = oriented.size
                exif = image.getexif()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageRejected(f"The image is damaged or incomplete and cannot be decoded ({exc}).") from exc
    latitude, longitude = _gps(exif)
    return InspectedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        image_format=image_format,
        extension=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        taken_at=_taken_at(exif),
        latitude=latitude,
        longitude=longitude,
    )


def _taken_at(exif: Image.Exif) -> datetime | None:
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    raw = ifd.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not isinstance(raw, str):
        return None
    try:
        naive = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = ifd.get(ExifTags.Base.OffsetTimeOriginal)
    tz: timezone = UTC
    if isinstance(offset, str) and len(offset) >= 6 and offset[0] in "+-":
        try:
            sign = 1 if offset[0] == "+" else -1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        except ValueError:
            tz = UTC
    # Cameras without an offset tag record local time of unknown zone; UTC is the documented assumption.
    taken = naive.replace(tzinfo=tz)
    try:
        taken.astimezone(UTC)  # 0001-01-01 00:00 +01:00 lies before year 1 in UTC
    except OverflowError:
        return None
    return taken


def _dms_to_degrees(dms: Any, ref: Any) -> float | None:
    try:
        degrees = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return -degrees if str(ref).upper() in {"S", "W"} else degrees


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if not gps:
        return None, None
    lat = _dms_to_degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    lon = _dms_to_degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def rendition(data: bytes, max_side: int) -> bytes:
    """An EXIF-oriented JPEG no larger than `max_side`, for display. The original is kept as uploaded."""
    with Image.open(io.BytesIO(data)) as image:
        oriented = ImageOps.exif_transpose(image)
        oriented.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        if oriented.mode not in ("RGB", "L"):
            oriented = oriented.convert("RGB")
        out = io.BytesIO()
        oriented.save(out, format="JPEG", quality=85, optimize=True)
        return out.getvalue()

"""Candidate thumbnails and content digests for ``spurbench mine``: each pool file read once for both."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

from PIL import Image

from spurbench.benchmarks.base import BenchmarkImage
from spurbench.files import atomic_path, slug
from spurbench.mining.pool import Pool

THUMBS_DIR = "thumbs"
THUMBNAIL = 224
SMALL_IMAGE = 64  # px: thumbnails of images up to this side are PNG


def small_web_image(data: bytes) -> str | None:
    """ "png" or "jpg" when ``data`` is a PNG or JPEG file no larger than ``THUMBNAIL`` px a side (a PNG's
    size read from its IHDR chunk, so most small pool images are never parsed by PIL); else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "png" if max(width, height) <= THUMBNAIL else None
    if data[:3] == b"\xff\xd8\xff":
        try:
            with Image.open(io.BytesIO(data)) as header:  # lazy: the header only
                return "jpg" if max(header.size) <= THUMBNAIL else None
        except Exception:  # not decodable here; the slow path reports it
            return None
    return None


def thumbnail_and_digest(pool: Pool, image: BenchmarkImage, out: Path) -> tuple[str, str]:
    """The candidate's thumbnail (written once) and content digest. A pool file is read once for both:
    its bytes' sha256, and, when it is already a small PNG or JPEG, those bytes are the thumbnail (no
    decode, no encode). Otherwise the image is shrunk to ``THUMBNAIL`` px: JPEG for photos (a tenth of
    PNG's encoding time), PNG for small images, where JPEG's blocks would show."""
    data = pool.files[image.image_id].read_bytes() if image.image_id in pool.files else None
    if data is not None and (kind := small_web_image(data)):
        thumb = f"{THUMBS_DIR}/{slug(image.image_id)}.{kind}"
        if not (out / thumb).exists():
            with atomic_path(out / thumb) as tmp:
                tmp.write_bytes(data)
        return thumb, "sha256:" + hashlib.sha256(data).hexdigest()
    decoded = Image.open(io.BytesIO(data)) if data is not None else image.open()
    photo = max(decoded.size) > SMALL_IMAGE
    thumb = f"{THUMBS_DIR}/{slug(image.image_id)}.{'jpg' if photo else 'png'}"
    if not (out / thumb).exists():
        small = decoded.convert("RGB")
        small.thumbnail((THUMBNAIL, THUMBNAIL))
        with atomic_path(out / thumb) as tmp:
            small.save(tmp, format="JPEG", quality=90) if photo else small.save(tmp, format="PNG")
    if data is not None:
        return thumb, "sha256:" + hashlib.sha256(data).hexdigest()
    rgb = decoded.convert("RGB")
    return thumb, "rgb-sha256:" + hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


__all__ = ["SMALL_IMAGE", "THUMBNAIL", "THUMBS_DIR", "small_web_image", "thumbnail_and_digest"]

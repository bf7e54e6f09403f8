"""Any image set in: .npy / .npz arrays, IDX files, or a folder of PNG / JPEG files (see docs/data.md).

    images = open_images("photos/", resize=(32, 32))   # ImageSet: .x (N, H, W, C) uint8 or float in [0, 1]
    images.image_shape                                   # (H, W) for grayscale, (H, W, C) for colour
    images.x[i:j]                                        # a large .npy is memory-mapped: only slices are read

Every defect is a DataFileError naming the file and the problem (mixed sizes, unreadable image, wrong dtype, NaN,
values outside [0, 1]). Pillow is imported only when a folder is read.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .idx import read_idx_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS = (1, 3)                    # grayscale or RGB
NPZ_KEYS = ("images", "x")           # the array an .npz with several arrays must name
_IDX_IMAGE_MAGICS = {0x00000803: 3, 0x00000804: 4}   # unsigned bytes, (N, H, W) or (N, H, W, C)
_CHECK_CHUNK = 1 << 24               # values per pass when range-checking a memory-mapped float array
# Pillow modes that hold colour; every other mode ("1", "L", "LA", "I", "I;16") is read as grayscale ("F" is refused).
_EXIF_ORIENTATION = 0x0112
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})


@dataclass(frozen=True)
class ImageSet:
    """Images read from `source`: x is (N, H, W, C) with C 1 or 3, uint8 (0..255) or float (in [0, 1]);
    it may be a read-only memory map. `names[i]` names image i (a file name for folders, else "#i");
    `sha256` identifies the content (of the file, or of every file of a folder, in order)."""

    x: np.ndarray
    source: Path
    names: tuple[str, ...] | None
    sha256: str

    def __len__(self) -> int:
        return len(self.x)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) for grayscale, (H, W, C) for colour: the shape a model file records as input_shape."""
        h, w, c = self.x.shape[1:]
        return (h, w) if c == 1 else (h, w, c)

    def name(self, i: int) -> str:
        return self.names[i] if self.names is not None else f"#{i}"

    def float32(self, index=slice(None)) -> np.ndarray:
        """Images `index` as a new (n, H*W*C) float32 array in [0, 1] (what the trainer feeds Keras)."""
        part = np.asarray(self.x[index])
        flat = part.reshape(len(part), -1)
        if flat.dtype == np.uint8:
            return flat.astype(np.float32) / np.float32(255)
        return flat.astype(np.float32)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '32x32') -> (H, W); ValueError naming what was expected."""
    parts = str(text).lower().split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"size must be HxW with two positive integers, e.g. 32x32, got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be HxW with two positive integers, e.g. 32x32, got {text!r}")
    return h, w


def _file_sha256(path: Path, digest=None):
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def _checked_array(x: np.ndarray, source: str) -> np.ndarray:
    """x as (N, H, W, C): uint8, or float16/32/64 finite and within [0, 1]; DataFileError naming `source`."""
    if x.dtype != np.uint8 and x.dtype.type not in (np.float16, np.float32, np.float64):
        raise DataFileError(f"{source}: images have dtype {x.dtype}; expected uint8 (0..255) or float in [0, 1]")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[3] not in CHANNELS or min(x.shape[1:3], default=0) < 1:
        raise DataFileError(f"{source}: images have shape {x.shape}; expected (N, H, W) or (N, H, W, C) "
                            f"with C in {CHANNELS}")
    if len(x) == 0:
        raise DataFileError(f"{source}: holds no images")
    if x.dtype != np.uint8:
        flat = x.reshape(-1)
        for start in range(0, flat.size, _CHECK_CHUNK):   # chunked: a memory map is never read whole at once
            part = flat[start:start + _CHECK_CHUNK]
            lo, hi = float(part.min()), float(part.max())
            if not (np.isfinite(lo) and np.isfinite(hi)):
                bad = start + int(np.flatnonzero(~np.isfinite(part))[0])
                raise DataFileError(f"{source}: NaN or infinite pixel (image {bad // (flat.size // len(x))}); "
                                    "expected float pixels in [0, 1]")
            if lo < 0 or hi > 1:
                raise DataFileError(f"{source}: float pixels range over [{lo:g}, {hi:g}]; expected [0, 1] "
                                    "(store raw 0..255 pixels as uint8, or divide by 255)")
    return x


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)   # memory-mapped: pages are read on use
    except ValueError as e:   # object arrays need pickle, damaged headers
        raise DataFileError(f"{path}: not a readable numeric .npy array ({e})") from None


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
            if key is None:
                raise DataFileError(f"{path}: holds arrays {keys}; expected one array, or one named "
                                    f"{' or '.join(NPZ_KEYS)}")
            return npz[key]
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz archive of numeric arrays ({e})") from None


def _idx_dims(data: bytes) -> int | None:
    """The number of dimensions of an IDX image file (3 or 4), or None when `data` does not start like one."""
    if len(data) < 4:
        return None
    return _IDX_IMAGE_MAGICS.get(struct.unpack(">I", data[:4])[0])


def _read_idx(path: Path) -> np.ndarray:
    data = read_idx_bytes(path)
    ndim = _idx_dims(data)
    if ndim is None:
        raise DataFileError(f"{path}: not an .npy, .npz or IDX image file (IDX magic 0x00000803 or 0x00000804 "
                            "expected), and not a folder of images")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + int(np.prod(dims, dtype=np.int64)):
        raise DataFileError(f"{path}: {len(data)} bytes, expected {header + int(np.prod(dims))} for IDX "
                            f"dimensions {dims} (truncated or trailing bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _folder_files(folder: Path) -> list[Path]:
    """The image files below `folder`, sorted; hidden ones (a part of the path starts with ".", such as macOS
    "._photo.jpg" companions or a ".thumbnails" folder) are skipped."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise DataFileError(f"{folder}: no {', '.join(IMAGE_SUFFIXES)} files in this folder or below it")
    return files


def _scan_folder(folder: Path, files: list[Path], resize: tuple[int, int] | None) -> tuple[int, int, int]:
    """(H, W, C) the images of `files` will be read as, from their headers alone (Pillow decodes lazily):
    one common size unless `resize`, C = 3 when any image is colour."""
    from PIL import Image, UnidentifiedImageError

    sizes, colour = {}, False
    for path in files:
        try:
            with Image.open(path) as img:
                # Camera photos store their rotation as EXIF orientation; 5..8 turn the image by 90 degrees.
                turned = img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
                sizes.setdefault(img.size[::-1] if turned else img.size, path)
                colour = colour or img.mode in _COLOUR_MODES
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise DataFileError(f"{path}: unreadable image ({e})") from None
    if resize is None and len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise DataFileError(f"{folder}: images of different sizes ({p1.name} is {s1[1]}x{s1[0]}, {p2.name} is "
                            f"{s2[1]}x{s2[0]}); pass --resize HxW (resize=(H, W)) to bring them to one size")
    h, w = resize if resize is not None else next(iter(sizes))[::-1]
    return h, w, 3 if colour else 1


def _read_folder(folder: Path, resize: tuple[int, int] | None, progress: bool) -> tuple[np.ndarray, list[Path]]:
    """All images below `folder` (sorted by path) as one (N, H, W, C) uint8 array; C is 3 if any is colour.
    Each image is turned upright by its EXIF orientation first (as photo viewers show it)."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    from tqdm.auto import tqdm

    files = _folder_files(folder)
    h, w, channels = _scan_folder(folder, files, resize)
    out = np.empty((len(files), h, w, channels), np.uint8)
    for i, path in enumerate(tqdm(files, desc=f"reading {folder.name}", unit="img", disable=not progress or None,
                                  leave=False)):
        try:
            with Image.open(path) as img:
                img = _eight_bit(ImageOps.exif_transpose(img), path).convert("RGB" if channels == 3 else "L")
                if img.size != (w, h):
                    img = img.resize((w, h), Image.Resampling.LANCZOS)
                out[i] = np.asarray(img).reshape(h, w, channels)
        except DataFileError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataFileError(f"{path}: unreadable image ({e})") from None
    return out, files


def _eight_bit(img, path: Path):
    """16-bit grayscale (Pillow modes I;16*, and I as 16-bit PNGs open) scaled to 8 bits, value / 257 rounded:
    Pillow's own convert("L") would clip everything above 255. Float images have no agreed range: refused."""
    from PIL import Image

    if img.mode == "F":
        raise DataFileError(f"{path}: 32-bit float image; expected 8- or 16-bit pixels (save it as 8-bit PNG)")
    if img.mode == "I" or img.mode.startswith("I;16"):
        wide = np.asarray(img).astype(np.int64)
        if wide.min() < 0 or wide.max() > 65535:
            raise DataFileError(f"{path}: integer pixels outside 0..65535; expected 8- or 16-bit pixels")
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    return img


def peek_image_shape(path: str | os.PathLike, *, resize: tuple[int, int] | None = None) -> tuple[int, ...]:
    """The image_shape open_images(path, resize=resize) will have, without decoding a folder's images."""
    path = Path(path).expanduser()
    if path.is_dir():
        h, w, c = _scan_folder(path, _folder_files(path), resize)
        return (h, w) if c == 1 else (h, w, c)
    return open_images(path, resize=resize).image_shape


def open_images(path: str | os.PathLike, *, resize: tuple[int, int] | None = None,
                progress: bool = False) -> ImageSet:
    """Read an image set: a folder of PNG/JPEG files (all one size, or each resized to `resize` = (H, W)),
    an .npy (memory-mapped) or .npz array (N, H, W[, C]), or an IDX image file (gzipped or raw).

    Raises DataFileError naming the file and the problem. `progress`: a tqdm bar while a folder is decoded.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        x, files = _read_folder(path, resize, progress)
        digest = hashlib.sha256()
        for f in files:
            digest.update(str(f.relative_to(path)).encode("utf-8") + b"\0")
            _file_sha256(f, digest)
        return ImageSet(x, path, tuple(str(f.relative_to(path)) for f in files), digest.hexdigest())
    if not path.exists():
        raise DataFileError(f"{path}: no such file or folder")
    if resize is not None:
        raise DataFileError(f"{path}: resizing applies to folders of image files; resize the array itself "
                            "(its images are used at their stored size)")
    suffix = path.suffix.lower()
    try:
        raw = _read_npy(path) if suffix == ".npy" else _read_npz(path) if suffix == ".npz" else _read_idx(path)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return ImageSet(_checked_array(raw, str(path)), path, None, _file_sha256(path).hexdigest())

"""Any image set in: .npy / .npz arrays, IDX files, or a folder of PNG / JPEG files (see docs/data.md).

    images = open_images("photos/", resize=(32, 32))   # ImageSet: .x (N, H, W, C) uint8 or float in [0, 1]
    images.image_shape                                   # (H, W) for grayscale, (H, W, C) for colour
    images.x[i:j]                                        # a large .npy is memory-mapped: only slices are read

Every defect is a DataFileError naming the file and the problem (mixed sizes, unreadable image, wrong dtype, NaN,
values outside [0, 1]). Pillow is imported only when a folder is read.
"""
from __future__ import annotations

import hashlib
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .idx import read_idx_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS = (1, 3)                    # grayscale or RGB
NPZ_KEYS = ("images", "x")           # the array an .npz with several arrays must name
_IDX_IMAGE_MAGICS = {0x00000803: 3, 0x00000804: 4}   # unsigned bytes, (N, H, W) or (N, H, W, C)
# An .npz member is inflated into memory: one declaring more bytes than this is refused before it is read
# (the bound IDX files have, aefast.data.idx.MAX_IDX_BYTES).
MAX_NPZ_BYTES = 1 << 31
# Pixels one image of a folder may have, checked from its header before anything is decoded (Pillow's own default
# limit, which Pillow itself enforces only from twice this size, with a warning in between).
MAX_IMAGE_PIXELS = 89_478_485
_CHECK_CHUNK = 1 << 24               # values per pass when range-checking a memory-mapped float array
# Pillow modes that hold colour; every other mode ("1", "L", "LA", "I", "I;16") is read as grayscale ("F" is refused).
_EXIF_ORIENTATION = 0x0112
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})


@dataclass(frozen=True)
class ImageSet:
    """Images read from `source`: x is (N, H, W, C) with C 1 or 3, uint8 (0..255) or float (in [0, 1]);
    it may be a read-only memory map. `names[i]` names image i (a file name for folders, else "#i");
    `sha256` identifies the content (of the file, or of every file of a folder, in order, names included).
    For a folder, `skipped` lists the images left out as unreadable and `other_files` counts non-image files."""

    x: np.ndarray
    source: Path
    names: tuple[str, ...] | None
    sha256: str
    skipped: tuple[str, ...] = ()   # "file: why" of each unreadable image left out (skip_unreadable)
    other_files: int = 0            # files in the folder without an image suffix, not read

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


def _checked_array(x: np.ndarray, source: str, flat_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """x as (N, H, W, C): uint8, or float16/32/64 finite and within [0, 1]; DataFileError naming `source`
    (and, when flat rows of `flat_shape` were accepted, saying so)."""
    if x.dtype != np.uint8 and x.dtype.type not in (np.float16, np.float32, np.float64):
        raise DataFileError(f"{source}: images have dtype {x.dtype}; expected uint8 (0..255) or float in [0, 1]")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[3] not in CHANNELS or min(x.shape[1:3], default=0) < 1:
        flat = "" if flat_shape is None else (f", or (N, {math.prod(flat_shape)}) rows of the model's "
                                              f"{math.prod(flat_shape)} pixels")
        raise DataFileError(f"{source}: images have shape {x.shape}; expected (N, H, W) or (N, H, W, C) "
                            f"with C in {CHANNELS}{flat}")
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
    except (ValueError, EOFError, OverflowError) as e:   # object arrays, damaged or empty headers, absurd shapes
        raise DataFileError(f"{path}: not a readable numeric .npy array ({e}); expected a file written by "
                            "numpy.save") from None


def _read_npz_member(path: Path, zf, name: str) -> np.ndarray:
    """The array stored as `name` in the open zip `zf`, read only after its .npy header (shape, dtype) and the
    zip's record of its size agree and stay within MAX_NPZ_BYTES: a small archive cannot inflate into memory."""
    fmt = np.lib.format
    key = name[:-4]
    info = zf.getinfo(name)
    with zf.open(name) as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError("object arrays need pickle, which is not allowed")
        declared = math.prod(shape) * dtype.itemsize
        what = f"shape {shape} {dtype}"
        if declared > MAX_NPZ_BYTES:
            raise DataFileError(f"{path}: member {key!r} declares {what}, {declared:,} bytes, more than the "
                                f"{MAX_NPZ_BYTES:,} bytes an .npz member may hold (store large sets as .npy, "
                                "which is memory-mapped)")
        stored = info.file_size - f.tell()
        if stored != declared:
            raise DataFileError(f"{path}: member {key!r} holds {stored:,} bytes of data, but its header declares "
                                f"{declared:,} ({what}); the archive is damaged")
        data = f.read(declared)
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_npz(path: Path) -> np.ndarray:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            keys = [n[:-4] for n in names]
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
            if key is None:
                raise DataFileError(f"{path}: holds arrays {keys}; expected one array, or one named "
                                    f"{' or '.join(NPZ_KEYS)}")
            return _read_npz_member(path, zf, key + ".npy")
    except DataFileError:
        raise
    except (ValueError, OSError, EOFError, OverflowError, zipfile.BadZipFile, zlib.error) as e:
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


@dataclass(frozen=True)
class FolderScan:
    """What a header-only pass over a folder found (scan_folder): the image files to decode, sorted by path, the
    (height, width, channels) they will be decoded to, and what was left out."""

    folder: Path
    files: tuple[Path, ...]
    height: int
    width: int
    channels: int
    colour_file: Path | None = None            # the first colour image, the reason channels is 3
    skipped: tuple[str, ...] = ()              # "file: why" of each unreadable image left out (skip_unreadable)
    other_files: int = 0                       # files below the folder without an image suffix, not read
    skip_unreadable: bool = False              # images that fail to decode are skipped too, not raised

    @property
    def image_shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, self.channels)


def _folder_files(folder: Path) -> tuple[list[Path], int]:
    """(the image files below `folder`, sorted; how many other files there are). Hidden files (a part of the path
    starts with ".", such as macOS "._photo.jpg" companions or a ".thumbnails" folder) are not counted."""
    files, others = [], 0
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            others += 1
            continue
        try:
            str(rel).encode("utf-8")
        except UnicodeEncodeError:
            raise DataFileError(f"{folder}: the file name {os.fsencode(rel)!r} is not valid UTF-8; expected UTF-8 "
                                "file names (rename the file)") from None
        files.append(p)
    if not files:
        raise DataFileError(f"{folder}: no {', '.join(IMAGE_SUFFIXES)} files in this folder or below it")
    return sorted(files), others


def _size_text(w: int, h: int) -> str:
    return f"{w}x{h}"


def _unreadable(path: Path, e: Exception) -> DataFileError:
    return DataFileError(f"{path}: unreadable image ({type(e).__name__}: {e}); expected a PNG or JPEG file")


def _png_late_exif(path: Path) -> bytes | None:
    """The eXIf chunk of a PNG file found by walking its chunk headers (seeking over the pixel data, which is
    never read), or None. PNG allows eXIf after the pixel data, where Pillow sees it only after decoding."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(8)
        while f.tell() + 8 <= size:
            length, kind = struct.unpack(">I4s", f.read(8))
            if kind == b"eXIf":
                return f.read(min(length, size - f.tell()))
            if kind == b"IEND":
                return None
            f.seek(length + 4, os.SEEK_CUR)
    return None


def _orientation(img, path: Path, *, loaded: bool) -> int | None:
    """The EXIF orientation (1..8) of `img`, or None. An unloaded PNG is never loaded for it (Pillow's getexif()
    would decode the whole image to look for an eXIf chunk after the pixels): its chunk headers are walked."""
    from PIL import Image

    try:
        if img.format == "PNG" and "exif" not in img.info and not loaded:
            late = _png_late_exif(path)
            if late is None:
                return None
            exif = Image.Exif()
            exif.load(late)
            return exif.get(_EXIF_ORIENTATION)
        return img.getexif().get(_EXIF_ORIENTATION)
    except Exception as e:   # Pillow's EXIF parser raises SyntaxError, struct.error, ValueError ... on bad bytes
        raise DataFileError(f"{path}: damaged EXIF data ({type(e).__name__}: {e}); expected a TIFF-format EXIF "
                            "block (or none)") from None


def _is_colour(img) -> bool:
    """Whether `img` holds colour, from its header: a palette image whose palette is all greys is grayscale."""
    if img.mode in ("P", "PA") and img.palette is not None and img.palette.mode == "RGB":
        entries = np.frombuffer(bytes(img.palette.palette), np.uint8)
        if entries.size and entries.size % 3 == 0:
            rgb = entries.reshape(-1, 3)
            return not bool((rgb == rgb[:, :1]).all())
    return img.mode in _COLOUR_MODES


def _open_checked(path: Path):
    """Image.open(path) with its pixel count checked against MAX_IMAGE_PIXELS (Pillow's bomb warning silenced:
    this check replaces it)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(path)
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        img.close()
        raise DataFileError(f"{path}: {_size_text(w, h)} (width x height) = {w * h:,} pixels, more than the "
                            f"{MAX_IMAGE_PIXELS:,} pixels an image may have (aefast.data.images.MAX_IMAGE_PIXELS); "
                            "shrink it first")
    return img


def _probe(path: Path) -> tuple[tuple[int, int], bool]:
    """((width, height) upright, colour) of one image from its header; DataFileError naming it if unreadable."""
    try:
        with _open_checked(path) as img:
            w, h = img.size
            # Camera photos store their rotation as EXIF orientation; 5..8 turn the image by 90 degrees.
            turned = _orientation(img, path, loaded=False) in (5, 6, 7, 8)
            return ((h, w) if turned else (w, h)), _is_colour(img)
    except DataFileError:
        raise
    except Exception as e:   # any decoder error on a damaged file (KeyboardInterrupt is not an Exception)
        raise _unreadable(path, e) from None


def scan_folder(folder: str | os.PathLike, *, resize: tuple[int, int] | None = None,
                skip_unreadable: bool = False) -> FolderScan:
    """The images below `folder` and the (H, W, C) they will be read as, from their headers alone (nothing is
    decoded): one common size unless `resize`, C = 3 when any image is colour. An unreadable image raises
    DataFileError naming it, or with `skip_unreadable` is listed in .skipped and left out."""
    folder = Path(folder).expanduser()
    candidates, others = _folder_files(folder)
    sizes: dict[tuple[int, int], Path] = {}
    files, skipped, colour_file = [], [], None
    for path in candidates:
        try:
            size, colour = _probe(path)
        except DataFileError as e:
            if not skip_unreadable:
                raise
            skipped.append(str(e))
            continue
        files.append(path)
        sizes.setdefault(size, path)
        if colour and colour_file is None:
            colour_file = path
    if not files:
        raise DataFileError(f"{folder}: none of its {len(candidates)} image files is readable ({skipped[0]})")
    if resize is None and len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise DataFileError(f"{folder}: images of different sizes ({p1.name} is {_size_text(*s1)}, {p2.name} is "
                            f"{_size_text(*s2)}, width x height); pass --resize HxW (height x width; "
                            "resize=(H, W)) to bring them to one size")
    h, w = resize if resize is not None else next(iter(sizes))[::-1]
    return FolderScan(folder, tuple(files), h, w, 3 if colour_file else 1, colour_file, tuple(skipped), others,
                      skip_unreadable)


_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
              7: "TRANSVERSE", 8: "ROTATE_90"}   # EXIF orientation -> the Pillow transpose that makes it upright


def _decode(path: Path, scan: FolderScan, resized: bool) -> np.ndarray:
    """One image as (H, W, C) uint8: decoded, turned upright by its EXIF orientation (as photo viewers show it),
    converted to the folder's channels and resized when `resized`."""
    from PIL import Image

    h, w, channels = scan.height, scan.width, scan.channels
    try:
        with _open_checked(path) as img:
            img.load()
            orientation = _orientation(img, path, loaded=True)
            if orientation in _TRANSPOSE:
                img = img.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))
            img = _eight_bit(img, path).convert("RGB" if channels == 3 else "L")
            if img.size != (w, h):
                if not resized:
                    raise DataFileError(f"{path}: {_size_text(*img.size)} (width x height) once turned upright by "
                                        f"its EXIF orientation, but the other images are {_size_text(w, h)}; "
                                        "pass --resize HxW (height x width) to bring them to one size")
                img = img.resize((w, h), Image.Resampling.LANCZOS)
            return np.asarray(img).reshape(h, w, channels)
    except DataFileError:
        raise
    except Exception as e:   # any decoder error on a damaged file (KeyboardInterrupt is not an Exception)
        raise _unreadable(path, e) from None


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_folder(scan: FolderScan, resized: bool, progress: bool) -> tuple[np.ndarray, list[Path], list[str]]:
    """The images of `scan` as one (N, H, W, C) uint8 array, with the files read and the "file: why" of those
    skipped because they failed to decode (only when the scan skipped unreadable files; else that raises)."""
    from tqdm.auto import tqdm

    shape = (len(scan.files), scan.height, scan.width, scan.channels)
    need, ram = math.prod(shape), _physical_memory()
    if ram is not None and need > ram:
        raise DataFileError(f"{scan.folder}: {len(scan.files):,} images of {_size_text(scan.width, scan.height)} "
                            f"(width x height) x {scan.channels} channel(s) need {need:,} bytes decoded, more than "
                            f"this machine's {ram:,} bytes of memory; resize them (--resize HxW) or use fewer")
    out = np.empty(shape, np.uint8)
    kept, skipped = [], list(scan.skipped)
    for path in tqdm(scan.files, desc=f"reading {scan.folder.name}", unit="img", disable=not progress or None,
                     leave=False):
        try:
            out[len(kept)] = _decode(path, scan, resized)   # compacted in place when an image is skipped
        except DataFileError as e:
            if not scan.skip_unreadable:
                raise
            skipped.append(str(e))
            continue
        kept.append(path)
    if not kept:
        raise DataFileError(f"{scan.folder}: none of its image files is readable ({skipped[0]})")
    return out[:len(kept)], kept, skipped


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
        return scan_folder(path, resize=resize).image_shape
    return open_images(path, resize=resize).image_shape


def read_scanned(scan: FolderScan, *, resized: bool, progress: bool = False) -> ImageSet:
    """The ImageSet of a folder scanned by scan_folder (`resized`: the scan was given a resize)."""
    x, files, skipped = _read_folder(scan, resized, progress)
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(scan.folder)).encode("utf-8") + b"\0")
        _file_sha256(f, digest)
    return ImageSet(x, scan.folder, tuple(str(f.relative_to(scan.folder)) for f in files), digest.hexdigest(),
                    tuple(skipped), scan.other_files)


def _flat_to_images(x: np.ndarray, flat_shape: tuple[int, ...] | None) -> np.ndarray:
    """A 2-D (N, pixels) array reshaped to (N, *flat_shape) when pixels equals their product; else x."""
    if flat_shape is not None and x.ndim == 2 and x.shape[1] == math.prod(flat_shape):
        return x.reshape(len(x), *flat_shape)
    return x


def open_images(path: str | os.PathLike, *, resize: tuple[int, int] | None = None, progress: bool = False,
                skip_unreadable: bool = False, flat_shape: tuple[int, ...] | None = None) -> ImageSet:
    """Read an image set: a folder of PNG/JPEG files (all one size, or each resized to `resize` = (H, W)),
    an .npy (memory-mapped) or .npz array (N, H, W[, C]), or an IDX image file (gzipped or raw).

    Raises DataFileError naming the file and the problem. `progress`: a tqdm bar while a folder is decoded.
    `skip_unreadable`: a folder's unreadable images are left out and listed in ImageSet.skipped instead.
    `flat_shape` (H, W) or (H, W, C): an array of flat rows (N, H*W*C) is read as (N, H, W, C).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return read_scanned(scan_folder(path, resize=resize, skip_unreadable=skip_unreadable),
                            resized=resize is not None, progress=progress)
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
    raw = _flat_to_images(raw, flat_shape)
    return ImageSet(_checked_array(raw, str(path), flat_shape), path, None, _file_sha256(path).hexdigest())

"""Image-folder datasets: a tree of image files with one sub-folder per class, or a tar of one.

Accepted layouts (inside a folder or a ``.tar``/``.tar.gz``/``.tgz``/``.tar.bz2``/``.tar.xz``;
a single wrapping top folder is skipped)::

    train/<class>/<file>.jpg   test/<class>/<file>.jpg   [valid/<class>/<file>.jpg]
    <class>/<file>.png                                     (no official test part)

Classes are the sub-folder names, sorted, unless ``class_order`` gives them (CIFAR-10 uses its
official order); within a class, files are taken in name order. All images must have the same
size; they are decoded once with Pillow to ``uint8`` ``N, C, H, W`` (C = 1 for grayscale, else 3
— alpha is dropped). The decoded arrays are cached by :mod:`ocdl.data.cache`.
"""
from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .types import RawData

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff",
              ".webp")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test",
               "valid": "valid", "val": "valid", "validation": "valid"}
_GRAY = {"1", "L", "LA", "I", "I;16", "F"}


def is_tar(path: Path) -> bool:
    """True if ``path`` looks like a tar archive by name."""
    return str(path).lower().endswith(TAR_SUFFIXES)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS) and not PurePosixPath(name).name.startswith(".")


def _iter_dir(root: Path) -> Iterator[tuple[tuple[str, ...], bytes]]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and _is_image(p.name):
            yield p.relative_to(root).parts, p.read_bytes()


def _iter_tar(path: Path) -> Iterator[tuple[tuple[str, ...], bytes]]:
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                if m.isfile() and _is_image(m.name):
                    f = tf.extractfile(m)
                    if f is not None:
                        parts = tuple(p for p in PurePosixPath(m.name).parts if p not in ("", "."))
                        yield parts, f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e}); it is truncated or corrupt — delete "
                        "it and fetch it again") from None


def _decode(data: bytes, where: str, mode: str | None) -> np.ndarray:
    try:
        im = Image.open(io.BytesIO(data))
        if mode is None:
            mode = "L" if im.mode in _GRAY else "RGB"
        if im.mode != mode:
            im = im.convert(mode)
        return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{where}: cannot decode image ({e}); the file is truncated or not an "
                        "image — remove it or replace it") from None


def _layout(items: list[tuple[tuple[str, ...], bytes]], where: str) -> list[tuple[str, str, str, bytes]]:
    """Map each item to (split, class, name, bytes)."""
    paths = [p for p, _ in items]
    if not paths:
        raise DataError(f"{where}: no image files found (looked for {', '.join(IMAGE_EXTS)})")
    strip = 0
    while (all(len(p) >= strip + 3 for p in paths)
           and len({p[strip] for p in paths}) == 1
           and paths[0][strip].lower() not in SPLIT_NAMES):
        strip += 1
    tops = {p[strip].lower() for p in paths if len(p) > strip + 1}
    split_layout = bool(tops) and tops <= set(SPLIT_NAMES) and all(len(p) >= strip + 3 for p in paths)
    out = []
    for parts, data in items:
        parts = parts[strip:]
        if split_layout:
            out.append((SPLIT_NAMES[parts[0].lower()], parts[1], "/".join(parts[2:]), data))
        else:
            if len(parts) < 2:
                raise DataError(f"{where}: image '{'/'.join(parts)}' is not inside a class folder;"
                                " put each class's images in a sub-folder named after the class")
            out.append(("train", parts[0], "/".join(parts[1:]), data))
    if split_layout and not any(s == "train" for s, *_ in out):
        raise DataError(f"{where}: found {', '.join(sorted(tops))} folders but no train/ folder")
    return out


def _build(items: list[tuple[str, str, str, bytes]], where: str, fmt: str,
           class_order: list[str] | None) -> RawData:
    found = sorted({c for _, c, _, _ in items})
    if class_order is not None:
        extra = sorted(set(found) - set(class_order))
        if extra:
            raise DataError(f"{where}: unexpected class folders {extra}; expected "
                            f"{', '.join(class_order)}")
        classes = list(class_order)
    else:
        classes = found
    index = {c: i for i, c in enumerate(classes)}
    items.sort(key=lambda t: (t[0], index[t[1]], t[2]))
    mode: str | None = None
    shape: tuple[int, ...] | None = None
    first = ""
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for split, cls, name, data in items:
        at = f"{where}:{split}/{cls}/{name}" if fmt.endswith("tar") else f"{where}/{cls}/{name}"
        arr = _decode(data, at, mode)
        if mode is None:
            mode, shape, first = ("L" if arr.ndim == 2 else "RGB"), arr.shape, at
        if arr.shape != shape:
            raise DataError(f"{at}: image size {arr.shape[1]}×{arr.shape[0]} differs from "
                            f"{shape[1]}×{shape[0]} of {first}; all images must have one size")
        xs, ys = parts.setdefault(split, ([], []))
        xs.append(arr)
        ys.append(index[cls])

    def stack(split: str) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        if split not in parts:
            return None, None
        xs, ys = parts[split]
        x = np.stack(xs)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x), np.asarray(ys, dtype=np.int64)

    x_train, y_train = stack("train")
    x_test, y_test = stack("test")
    x_valid, y_valid = stack("valid")
    return RawData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   x_valid=x_valid, y_valid=y_valid, classes=classes, format=fmt)


def load_image_folder(path: Path, class_order: list[str] | None = None) -> RawData:
    """Decode an image-folder tree on disk."""
    path = Path(path)
    items = list(_iter_dir(path))
    return _build(_layout(items, str(path)), str(path), "image-folder", class_order)


def load_image_tar(path: Path, class_order: list[str] | None = None) -> RawData:
    """Decode an image-folder tree straight from a tar archive (no extraction)."""
    path = Path(path)
    items = list(_iter_tar(path))
    return _build(_layout(items, str(path)), str(path), "image-tar", class_order)


def tar_member_names(path: Path, limit: int = 200) -> list[str]:
    """The first ``limit`` member names of a tar (to tell what it holds)."""
    names = []
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                names.append(m.name)
                if len(names) >= limit:
                    break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e}); it is truncated or corrupt") from None
    return names

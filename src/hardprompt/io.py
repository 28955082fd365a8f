"""File input and output: images, text lists, and whole-file (atomic) writes."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import HardpromptError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def upright_rgb(image: Image.Image) -> Image.Image:
    """`image` as RGB, turned as its EXIF orientation tag says (phones store photos sideways and set the tag)."""
    return ImageOps.exif_transpose(image).convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Open an image as upright RGB (see `upright_rgb`), or raise a one-line HardpromptError.

    An image over Pillow's pixel limit (`PIL.Image.MAX_IMAGE_PIXELS`, 89.5 million by default) is
    refused before it is decoded: Pillow only warns below twice the limit, and decoding such a file
    can take gigabytes.
    """
    path = Path(path)
    if not path.is_file():
        raise HardpromptError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return upright_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise HardpromptError(
            f"image {path} is too large: more than {Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image.MAX_IMAGE_PIXELS)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise HardpromptError(f"cannot read image {path}: {error}") from None


def looks_like_image_path(value: str) -> bool:
    """True when `value` names an image file by its suffix (it may not exist)."""
    return Path(value).suffix.lower() in IMAGE_SUFFIXES


def read_lines(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a UTF-8 text file."""
    path = Path(path)
    if not path.is_file():
        raise HardpromptError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HardpromptError(f"cannot read {path}: {error}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], None], suffix: str) -> None:
    """Call `write` on a temporary file in `path`'s folder, then rename it to `path`; OSError as HardpromptError."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except OSError as error:
        raise HardpromptError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)  # gone after the rename; left over after a failure


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` whole (UTF-8; a temporary file in the same folder, then a rename).

    Characters UTF-8 cannot encode (lone surrogates, from file names that are not UTF-8) are
    written as `\\uXXXX` escapes, which JSON reads back as the same string.
    """
    _atomic_write(path, lambda file: file.write(text.encode("utf-8", "backslashreplace")), ".tmp")


def atomic_save_image(path: str | Path, image: Image.Image) -> None:
    """Save `image` whole (format from the suffix): a temporary file in the same folder, then a rename."""
    image_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    _atomic_write(path, lambda file: image.save(file, format=image_format), Path(path).suffix)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    return folder_images(folder)[0]


def folder_images(folder: str | Path, recursive: bool = False) -> tuple[list[Path], int]:
    """The image files (by suffix) in `folder` (and below it if `recursive`), sorted by path, and the
    number of other files there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HardpromptError(f"folder not found: {folder}")
    files = [p for p in sorted(folder.rglob("*") if recursive else folder.iterdir()) if p.is_file()]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)


def write_json(path: str | Path, record: dict[str, Any]) -> None:
    """Write one JSON object, indented, atomically."""
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write JSON objects one per line, atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


class JsonlAppender:
    """Appends JSON objects to a file one line at a time, each line written whole and synced to disk.

    A process killed at any moment leaves every earlier line intact (at worst a last, partial line
    that a reader of the file must skip).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def append(self, record: dict[str, Any]) -> None:
        """Write `record` as one line and sync it to disk."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many lines were not one (a partial last line, say)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HardpromptError(f"cannot read {path}: {error}") from None
    records, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad

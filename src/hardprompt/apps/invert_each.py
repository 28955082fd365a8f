"""Many images → one prompt each: batched, independent of the batch, resumable.

`EachInversion` loads the model once and optimizes `images_per_batch` images per forward pass
(`PerTargetSimilarity`: each prompt row against its own image; PEZ batches them, the other methods
run image by image). An image's prompt depends only on the image, the config and the seed: its
start is drawn from a seed made of the run's seed and the image's content hash, and each image has
its own optimizer state, candidate pool and round-trip choice. Results carry the content hash and a
hash of everything that shapes them (`config_hash`), the key by which a rerun skips finished images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import HardpromptError
from ..io import JsonlAppender, folder_images, looks_like_image_path, read_jsonl, write_jsonl
from ..objectives import PerTargetSimilarity
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig, batches_problems, method_of, run_each_problem
from ..optim.result import Result
from ..vocab import VocabularyRules
from .common import (
    BankLike,
    ImageLike,
    ModelLike,
    as_encoder,
    as_image,
    bank_phrases,
    build_vocabulary,
    describe,
    describe_bank,
    encode_negatives,
    label_result,
)
from .invert import DEFAULT_IMAGE_MODEL

IMAGES_PER_BATCH = {"cpu": 16, "cuda": 64}
"""Default images per forward pass by device type (measured: benchmarks/results/invert_throughput.md)."""


@dataclass
class FailedImage:
    """An image that could not be read; the others go on."""

    image: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"image": self.image, "error": self.error}


def find_images(inputs: Sequence[str | Path], recursive: bool = False) -> tuple[list[Path], int]:
    """The image files named by `inputs` (files as given; folders walked in sorted order) and the
    number of files inside the folders skipped because their suffix is not an image's."""
    found: list[Path] = []
    skipped = 0
    for value in inputs:
        path = Path(value)
        if path.is_dir():
            images, others = folder_images(path, recursive)
            found.extend(images)
            skipped += others
        elif path.exists():
            found.append(path)
        else:
            raise HardpromptError(f"image or folder not found: {path}")
    return found, skipped


def content_hash(image: ImageLike) -> str:
    """SHA-256 of a file's bytes, or of a PIL image's mode, size and pixels."""
    if isinstance(image, Image.Image):
        digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()
    with open(image, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def image_seed(seed: int, image_hash: str) -> int:
    """The seed of one image's start: from the run's seed and the image's content hash only."""
    return int(hashlib.sha256(f"{seed}:{image_hash}".encode()).hexdigest()[:16], 16) >> 1


def run_hash(
    config: MethodConfig,
    model_name: str,
    *,
    dtype: str = "float32",
    negatives: Sequence[ImageLike] = (),
    negative_weight: float = 1.0,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    words_only: bool = False,
) -> str:
    """A hash of everything that shapes an image's result besides the image (not the device or batch size).

    Computed without loading the model, so a driver that only schedules work can key results too.
    """
    record = {
        "method": method_of(config).name,
        "config": {key: value for key, value in asdict(config).items() if key not in ("progress", "cuda_graph")},
        "model": model_name,
        "dtype": dtype,
        "blocklist": sorted(VocabularyRules(blocklist=tuple(blocklist)).blocklist),
        "bank": bank_phrases(bank),
        "ascii_only": ascii_only,
        "words_only": words_only,
        "negatives": [
            content_hash(n) if isinstance(n, (Image.Image, Path)) or looks_like_image_path(str(n)) else str(n)
            for n in negatives
        ],
        "negative_weight": negative_weight,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ImageTask:
    """One image to invert: where it comes from, how results name it, and its content hash."""

    source: ImageLike
    label: str
    hash: str


@dataclass
class ImagePlan:
    """The images a run will try (tasks, with unreadable files as `FailedImage`s) and how many it skips."""

    tasks: list[ImageTask | FailedImage]
    skipped: int

    @property
    def total(self) -> int:
        return len(self.tasks)


def plan_images(images: Sequence[ImageLike], config_hash: str, done: Collection[str] = ()) -> ImagePlan:
    """Hash every image; those whose key `content_hash:config_hash` is in `done` are skipped."""
    tasks: list[ImageTask | FailedImage] = []
    skipped = 0
    for index, image in enumerate(images):
        label = f"<image {index}>" if isinstance(image, Image.Image) else str(image)
        try:
            image_hash = content_hash(image)
        except OSError as error:
            tasks.append(FailedImage(label, f"cannot read image {label}: {error.strerror or error}"))
            continue
        if f"{image_hash}:{config_hash}" in done:
            skipped += 1
        else:
            tasks.append(ImageTask(image, label, image_hash))
    return ImagePlan(tasks, skipped)


class EachInversion:
    """One prompt per image with one loaded model: `plan` which images to do, then `run` them.

    `run` yields a `Result` (or a `FailedImage`) per image as its batch finishes. An unreadable image
    is raised as a HardpromptError unless `keep_going`, which yields a `FailedImage` and goes on.
    Ctrl-C during a batch ends the iteration after that batch's results, marked `interrupted`.
    """

    def __init__(
        self,
        model: ModelLike = DEFAULT_IMAGE_MODEL,
        config: MethodConfig | None = None,
        *,
        images_per_batch: int | None = None,
        negatives: Sequence[ImageLike] = (),
        negative_weight: float = 1.0,
        blocklist: Sequence[str] = (),
        bank: BankLike = None,
        ascii_only: bool = False,
        words_only: bool = False,
        device: str = "auto",
        dtype: str = "float32",
    ) -> None:
        self.config = config or PEZConfig()
        if self.config.batch_size is not None:
            raise HardpromptError("--batch-size picks targets per step of one prompt; each image has its own")
        if images_per_batch is not None and images_per_batch < 1:
            raise HardpromptError(f"images per batch must be at least 1 (got {images_per_batch})")
        self.encoder = as_encoder(model, device, dtype)
        if not self.encoder.supports_images:
            raise HardpromptError(f"model {self.encoder.name} has no image encoder; use a CLIP model or 'shapes'")
        self.config.validate(self.encoder.max_prompt_len)
        self.vocab = build_vocabulary(self.encoder, blocklist, bank, ascii_only, words_only)
        self.negatives = encode_negatives(self.encoder, negatives)
        self.negative_weight = negative_weight
        if not batches_problems(self.config):
            images_per_batch = 1
        self.images_per_batch = images_per_batch or IMAGES_PER_BATCH.get(self.encoder.device.type, 16)
        self.options = {
            "negatives": describe(list(negatives)),
            "negative_weight": negative_weight,
            "bank": describe_bank(bank),
        }
        self.config_hash = run_hash(
            self.config,
            self.encoder.name,
            dtype=dtype,
            negatives=negatives,
            negative_weight=negative_weight,
            blocklist=blocklist,
            bank=bank,
            ascii_only=ascii_only,
            words_only=words_only,
        )

    def key(self, image_hash: str) -> str:
        """The resume key of an image under this run's config."""
        return f"{image_hash}:{self.config_hash}"

    def plan(self, images: Sequence[ImageLike], done: Collection[str] = ()) -> ImagePlan:
        """The images of `images` not yet in `done` (keys from `key`)."""
        return plan_images(images, self.config_hash, done)

    def run(self, tasks: Iterable[ImageTask | FailedImage], keep_going: bool = False) -> Iterator[Result | FailedImage]:
        """Invert the tasks, `images_per_batch` at a time, yielding each image's result as its batch ends."""
        batch: list[tuple[ImageTask, Image.Image]] = []
        for task in tasks:
            if isinstance(task, FailedImage):
                yield self._fail(task, keep_going)
                continue
            try:
                batch.append((task, as_image(task.source)))
            except HardpromptError as error:
                yield self._fail(FailedImage(task.label, str(error)), keep_going)
                continue
            if len(batch) == self.images_per_batch:
                results = self._run(batch)
                yield from results
                if any(result.interrupted for result in results):
                    return
                batch = []
        if batch:
            yield from self._run(batch)

    @staticmethod
    def _fail(failure: FailedImage, keep_going: bool) -> FailedImage:
        if not keep_going:
            raise HardpromptError(failure.error)
        return failure

    def _run(self, batch: list[tuple[ImageTask, Image.Image]]) -> list[Result]:
        tasks = [task for task, _ in batch]
        targets = self.encoder.encode_images([image for _, image in batch])
        objective = PerTargetSimilarity(self.encoder, targets, self.negatives, self.negative_weight)
        seeds = [image_seed(self.config.seed, task.hash) for task in tasks]
        results = run_each_problem(objective, self.vocab, self.config, seeds)
        for task, result in zip(tasks, results, strict=False):
            options = {
                **self.options,
                "image": task.label,
                "content_hash": task.hash,
                "config_hash": self.config_hash,
                "run_seed": self.config.seed,
            }
            label_result(result, self.vocab, options, self.encoder.name)
        return results


def invert_each(
    images: Sequence[ImageLike], model: ModelLike = DEFAULT_IMAGE_MODEL, config: MethodConfig | None = None, **options
) -> Iterator[Result]:
    """One prompt per image, yielded as each batch finishes (options: those of `EachInversion`).

    The result's `config` holds the image (`image`), its `content_hash`, the `config_hash` and the
    image's own `seed` (drawn from the run's `run_seed` and the content hash). An unreadable image
    raises a HardpromptError.
    """
    inversion = EachInversion(model, config, **options)
    for item in inversion.run(inversion.plan(images).tasks):
        if isinstance(item, Result):
            yield item


class ResultLog:
    """The JSON-lines output of a folder run, and what a rerun may skip.

    Opening it keeps the lines of finished images; lines of failed or interrupted images, and a
    partial last line left by a killed process, are dropped (the file is rewritten whole) so that
    those images are done again and every image ends up on exactly one line. New lines are
    appended whole and synced one at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise HardpromptError(f"--out {self.path} is a directory; give a file name")
        self.records: list[dict[str, Any]] = []
        dropped = 0
        if self.path.exists():
            records, dropped = read_jsonl(self.path)
            for record in records:
                if _finished(record):
                    self.records.append(record)
                else:
                    dropped += 1
            if dropped:
                write_jsonl(self.path, self.records)
        self.dropped = dropped
        self.done = {f"{r['config']['content_hash']}:{r['config']['config_hash']}" for r in self.records}
        self._appender = JsonlAppender(self.path)

    def append(self, item: Result | FailedImage) -> None:
        """Write one image's line: its result (with the image first), or its error."""
        if isinstance(item, FailedImage):
            self._appender.append(item.to_dict())
        else:
            self._appender.append({"image": item.config["image"], **item.to_dict()})

    def close(self) -> None:
        self._appender.close()


def _finished(record: dict[str, Any]) -> bool:
    config = record.get("config")
    return (
        "prompt" in record
        and not record.get("interrupted")
        and isinstance(config, dict)
        and "content_hash" in config
        and "config_hash" in config
    )

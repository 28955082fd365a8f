"""`invert --each` on Ray: batches of images go to actors that each hold one `EachInversion`.

The driver hashes the images and plans the run as a local run does (`run_hash` needs no model), reads
each batch's files when it sends it, so the workers need no shared storage for the images, and
alone writes what comes back. An image's result depends only on its bytes, the config and the seed,
so a worker's result is the local run's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from ..apps.common import ImageLike
from ..apps.invert_each import EachInversion, FailedImage, ImagePlan, ImageTask, plan_images, run_hash
from ..errors import HardpromptError
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .pool import WorkerPool, image_from_bytes, start_worker, worker_pool

HASHED_OPTIONS = ("dtype", "negatives", "negative_weight", "blocklist", "bank", "ascii_only", "words_only")
"""The options of `EachInversion` besides model and config that shape a result (`run_hash` takes them)."""


@dataclass
class ImageBytes:
    """An image file as the driver read it: the name results give it, its content hash and its bytes."""

    label: str
    hash: str
    data: bytes


def read_batch(tasks: Sequence[ImageTask]) -> list[ImageTask | ImageBytes | FailedImage]:
    """What a worker is sent for `tasks`: a file's bytes, an in-memory image as is, or why a file is unreadable."""
    batch: list[ImageTask | ImageBytes | FailedImage] = []
    for task in tasks:
        if isinstance(task.source, Image.Image):
            batch.append(task)
            continue
        try:
            batch.append(ImageBytes(task.label, task.hash, Path(task.source).read_bytes()))
        except OSError as error:
            batch.append(FailedImage(task.label, f"cannot read image {task.label}: {error.strerror or error}"))
    return batch


def decode(entry: ImageTask | ImageBytes | FailedImage) -> ImageTask | FailedImage:
    """The task a worker runs for one entry of its batch; bytes that are no image fail as a local run's file."""
    if not isinstance(entry, ImageBytes):
        return entry
    try:
        return ImageTask(image_from_bytes(entry.data, entry.label), entry.label, entry.hash)
    except HardpromptError as error:
        return FailedImage(entry.label, str(error))


class InversionWorker:
    """A Ray actor: one `EachInversion`, its model loaded once, inverting the batches it is sent."""

    def __init__(self, options: dict[str, Any], cpus: float) -> None:
        self.inversion, self._info = start_worker(cpus, lambda: EachInversion(**options))

    def info(self) -> dict[str, Any]:
        """Where it runs, and how it batches and keys results (or why it could not start)."""
        info = dict(self._info)
        if self.inversion is not None:
            info.update(
                device=str(self.inversion.encoder.device),
                images_per_batch=self.inversion.images_per_batch,
                config_hash=self.inversion.config_hash,
            )
        return info

    def run(self, batch: list[ImageTask | ImageBytes | FailedImage]) -> list[Result | FailedImage]:
        """Every image's result (or failure), in the batch's order."""
        assert self.inversion is not None, "info() reported why this worker has no model"
        return list(self.inversion.run(map(decode, batch), keep_going=True))


class RayEachInversion:
    """`EachInversion`'s `plan` and `run`, with the batches done by the workers of `pool`."""

    def __init__(self, pool: WorkerPool, config_hash: str) -> None:
        self.pool = pool
        self.config_hash = config_hash

    def key(self, image_hash: str) -> str:
        """The resume key of an image under this run's config."""
        return f"{image_hash}:{self.config_hash}"

    def plan(self, images: Sequence[ImageLike], done: Collection[str] = ()) -> ImagePlan:
        """The images of `images` not yet in `done` (keys from `key`)."""
        return plan_images(images, self.config_hash, done)

    def run(self, tasks: Iterable[ImageTask | FailedImage], keep_going: bool = False) -> Iterator[Result | FailedImage]:
        """Each image's result as its batch comes back, batches in the order they finish.

        As a local run, it stops after a batch whose results are interrupted, and an unreadable image
        is a HardpromptError unless `keep_going`.
        """
        images: list[ImageTask] = []
        for task in tasks:
            if isinstance(task, FailedImage):
                yield _checked(task, keep_going)
            else:
                images.append(task)
        if not images:
            return
        info = self.pool.first_info()
        if info["config_hash"] != self.config_hash:
            raise HardpromptError(
                f"the Ray workers key results as {info['config_hash']}, this driver as {self.config_hash}: "
                "install the same hardprompt on every node"
            )
        size = info["images_per_batch"]
        batches = [images[start : start + size] for start in range(0, len(images), size)]
        finished = self.pool.map_unordered(
            batches,
            submit=lambda actor, batch: actor.run.remote(read_batch(batch)),
            give_up=lambda batch, reason: [FailedImage(task.label, f"{task.label}: {reason}") for task in batch],
        )
        for _, results in finished:
            for item in results:
                yield _checked(item, keep_going)
            if any(isinstance(item, Result) and item.interrupted for item in results):
                return


def _checked(item: Result | FailedImage, keep_going: bool) -> Result | FailedImage:
    if isinstance(item, FailedImage) and not keep_going:
        raise HardpromptError(item.error)
    return item


@contextmanager
def ray_inversion(
    model: str, config: MethodConfig, *, cluster: dict[str, Any], **options: Any
) -> Iterator[RayEachInversion]:
    """A `RayEachInversion` whose workers are stopped on exit.

    `model` is a name or path every node can load; `options` are `EachInversion`'s; `cluster` holds
    `worker_pool`'s options (address, workers, cpus_per_worker, gpus_per_worker, note).
    """
    config_hash = run_hash(config, model, **{key: options[key] for key in HASHED_OPTIONS if key in options})
    worker_options = {**options, "model": model, "config": replace(config, progress=False)}
    device = options.get("device", "auto")
    with worker_pool(InversionWorker, (worker_options,), device=device, **cluster) as pool:
        yield RayEachInversion(pool, config_hash)

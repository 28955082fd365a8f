"""`invert --each` on Ray: batches of images go to actors that each hold one `EachInversion`.

The driver hashes the images and plans the run as a local run does (`run_hash` needs no model), reads
each batch's files when it sends it, so the workers need no shared storage for the images, and
alone writes what comes back. An image's result depends only on its bytes, the config and the seed,
so a worker's result is the local run's.
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from transformers.utils import logging as transformers_logging

from ..apps.common import ImageLike
from ..apps.invert_each import EachInversion, FailedImage, ImagePlan, ImageTask, plan_images, run_hash
from ..errors import HardpromptError
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .pool import Note, WorkerPool, connection, fitting_workers, ray, worker_resources

HASHED_OPTIONS = ("dtype", "negatives", "negative_weight", "blocklist", "bank", "ascii_only")
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
    buffer = io.BytesIO(entry.data)
    try:
        with Image.open(buffer) as image:
            return ImageTask(image.convert("RGB"), entry.label, entry.hash)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        message = str(error).replace(repr(buffer), repr(entry.label))  # as PIL names a file it cannot read
        return FailedImage(entry.label, f"cannot read image {entry.label}: {message}")


class InversionWorker:
    """A Ray actor: one `EachInversion`, its model loaded once, inverting the batches it is sent."""

    def __init__(self, options: dict[str, Any], cpus: float) -> None:
        torch.set_num_threads(max(1, int(cpus)))
        transformers_logging.disable_progress_bar()  # the driver shows progress; Ray forwards workers' output
        transformers_logging.set_verbosity_error()
        self.error: str | None = None
        try:
            self.inversion: EachInversion | None = EachInversion(**options)
        except HardpromptError as error:
            self.inversion, self.error = None, str(error)

    def info(self) -> dict[str, Any]:
        """Where it runs, and how it batches and keys results (or why it could not start)."""
        info: dict[str, Any] = {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "error": self.error}
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
    model: str,
    config: MethodConfig,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 1.0,
    note: Note = lambda _: None,
    **options: Any,
) -> Iterator[RayEachInversion]:
    """A `RayEachInversion` over `workers` actors (default: as many as the cluster holds now), stopped on exit.

    `model` is a name or path every node can load; `options` are `EachInversion`'s. Ray is reached
    as `connection` says; each worker holds `cpus_per_worker` CPUs and, on CUDA, `gpus_per_worker` GPUs.
    """
    config_hash = run_hash(config, model, **{key: options[key] for key in HASHED_OPTIONS if key in options})
    worker_options = {**options, "model": model, "config": replace(config, progress=False)}
    with connection(address):
        resources = worker_resources(options.get("device", "auto"), cpus_per_worker, gpus_per_worker)
        fitting, kind = fitting_workers(resources)
        workers = workers or fitting
        if workers > fitting:
            note(f"{workers} Ray workers asked for, the cluster has room for {fitting} by its {kind}s now")
        each = f"{resources['num_cpus']:g} CPU" + (f", {resources['num_gpus']:g} GPU" if resources["num_gpus"] else "")
        note(f"starting {workers} Ray workers ({each} each)")
        pool = WorkerPool(InversionWorker, (worker_options, cpus_per_worker), workers, resources, note)
        try:
            yield RayEachInversion(pool, config_hash)
        finally:
            pool.close()

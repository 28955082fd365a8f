"""`reproduce` on Ray: target images go to actors that each hold the run's models (one `ImageEvaluator`).

The driver reads each image's file when it sends it and writes what comes back (images, sheet,
record, summary), as a local run does; an image's row does not depend on the other images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..apps.reproduce import Executor, ImageEvaluator, Item, Outcome, Pending
from ..errors import HardpromptError
from .pool import image_from_bytes, start_worker, worker_pool


class ReproductionWorker:
    """A Ray actor: one `ImageEvaluator` (optimizer, generator and scorer loaded once) evaluating what it is sent."""

    def __init__(self, options: dict[str, Any], cpus: float) -> None:
        self.evaluator, self._info = start_worker(cpus, lambda: ImageEvaluator(**options))

    def info(self) -> dict[str, Any]:
        """Where it runs (or why it could not start)."""
        info = dict(self._info)
        if self.evaluator is not None:
            info["device"] = str(self.evaluator.optimizer.device)
        return info

    def evaluate(self, index: int, item: Item, data: bytes) -> Outcome | None:
        """`ImageEvaluator.evaluate` of the item whose image file holds `data`."""
        assert self.evaluator is not None, "info() reported why this worker has no models"
        return self.evaluator.evaluate(item, index, image_from_bytes(data, str(item.image)))


def ray_executor(cluster: dict[str, Any]) -> Executor:
    """An `Executor` for `reproduce` that spreads the images over Ray workers (`cluster`: `worker_pool`'s options)."""

    def execute(options: dict[str, Any], pending: Pending) -> Iterator[tuple[Item, Outcome | None]]:
        worker_options = {**options, "progress": False, "config": replace(options["config"], progress=False)}
        with worker_pool(ReproductionWorker, (worker_options,), device=options["device"], **cluster) as pool:
            outcomes = pool.map_unordered(
                pending,
                submit=lambda actor, entry: actor.evaluate.remote(*entry, _read(entry[1].image)),
                give_up=_give_up,
            )
            for (_, item), outcome in outcomes:
                yield item, outcome

    return execute


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise HardpromptError(f"cannot read image {path}: {error.strerror or error}") from None


def _give_up(entry: tuple[int, Item], reason: str) -> None:
    raise HardpromptError(f"{entry[1].image}: {reason}")

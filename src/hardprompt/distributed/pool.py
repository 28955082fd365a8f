"""The Ray connection, and a pool of actors that each take one piece of work at a time and survive lost workers."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from PIL import Image, UnidentifiedImageError

from ..errors import HardpromptError

try:
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
except ImportError:
    raise HardpromptError("--ray needs Ray: pip install 'hardprompt[ray]'") from None

MAX_RESTARTS = 5
"""Times Ray restarts a worker whose process died (killed, out of memory, node lost) before giving up on it."""

ATTEMPTS = 3
"""Worker deaths one piece of work may cause before it is reported failed (one bad batch cannot stop a run)."""

Item = TypeVar("Item")
Served = TypeVar("Served")
Note = Callable[[str], None]


def first_line(error: BaseException) -> str:
    """The first line of an error's message (Ray's carry whole tracebacks)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


@contextmanager
def connection(address: str | None) -> Iterator[bool]:
    """Ray for the duration of the block, and whether it is a local instance started for it.

    A connection this process already holds is used as it is. Otherwise `address` is what `ray.init`
    takes ("auto": the cluster this machine belongs to; "ray://HOST:10001": a remote one through Ray
    Client; "HOST:6379"); None or "" starts a local Ray instance, which ends with the block.
    """
    if ray.is_initialized():
        yield False
        return
    main_thread = threading.current_thread() is threading.main_thread()
    on_terminate = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        ray.init(address=address or None, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"at {address}" if address else "locally"
        raise HardpromptError(f"cannot start or reach Ray {where}: {first_line(error)}") from None
    if on_terminate is not None:  # ray.init sets its own (exit at once); the caller's stays
        signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield not (address or os.environ.get("RAY_ADDRESS"))  # ray.init's own rule
    finally:
        ray.shutdown()


def image_from_bytes(data: bytes, label: str) -> Image.Image:
    """An image file's bytes as an RGB image, or a HardpromptError worded as a local run's for the file `label`."""
    buffer = io.BytesIO(data)
    try:
        with Image.open(buffer) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        message = str(error).replace(repr(buffer), repr(label))  # PIL names the file it cannot read
        raise HardpromptError(f"cannot read image {label}: {message}") from None


def quiet_worker(cpus: float) -> None:
    """A worker uses the CPUs it holds, and keeps library output (progress bars, warnings) to itself."""
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(max(1, int(cpus)))
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def start_worker(cpus: float, load: Callable[[], Served]) -> tuple[Served | None, dict[str, Any]]:
    """In a worker: quiet it (`quiet_worker`), then `load()` what it serves, once. Returns that (None when
    loading raised a HardpromptError) and the worker's info: its pid, node, and that error's message."""
    quiet_worker(cpus)
    info: dict[str, Any] = {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "error": None}
    try:
        return load(), info
    except HardpromptError as error:
        info["error"] = str(error)
        return None, info


def worker_resources(device: str, cpus: float, gpus: float) -> dict[str, float]:
    """What one worker holds: `cpus` CPUs, and `gpus` of a GPU (below 1: shared) when it runs on CUDA.

    It runs on CUDA for --device cuda, and for auto when the cluster has GPUs.
    """
    if cpus <= 0 or gpus <= 0:
        raise HardpromptError(f"a Ray worker needs more than 0 CPUs and GPUs (got {cpus} CPUs, {gpus} GPUs)")
    on_gpu = device.startswith("cuda") or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    return {"num_cpus": cpus, "num_gpus": gpus if on_gpu else 0}


def fitting_workers(resources: dict[str, float]) -> tuple[int, str]:
    """How many workers the cluster holds now by the GPUs, or else CPUs, each takes; and which of the two."""
    kind, need = ("GPU", resources["num_gpus"]) if resources["num_gpus"] else ("CPU", resources["num_cpus"])
    return int(ray.cluster_resources().get(kind, 0) // need), kind


class WorkerPool:
    """`workers` Ray actors of `worker_class`, each sent one piece of work at a time as it finishes the last.

    An actor is built once (its model loaded once) and restarted by Ray when its process dies; the
    work it held goes back to the queue for the next free actor. `worker_class` has an `info()`
    returning "pid", "node" and "device", or "error" when it could not start (a HardpromptError's
    message, raised here as one).
    """

    def __init__(self, worker_class: type, args: tuple, workers: int, resources: dict[str, float], note: Note) -> None:
        if workers < 1:
            raise HardpromptError(f"--workers must be at least 1 (got {workers})")
        self.note = note
        try:
            remote = ray.remote(worker_class).options(max_restarts=MAX_RESTARTS, max_task_retries=0, **resources)
            self.actors = [remote.remote(*args) for _ in range(workers)]
        except ValueError as error:
            raise HardpromptError(f"Ray refused the workers' resources {resources}: {first_line(error)}") from None
        self.starting = {actor.info.remote(): actor for actor in self.actors}
        self.idle: list[Any] = []
        self.info: dict[str, Any] | None = None

    def first_info(self) -> dict[str, Any]:
        """The `info()` of the first worker to be ready (waiting for one)."""
        while self.info is None:
            self._started(self._next(list(self.starting)))
        return self.info

    def map_unordered(
        self,
        items: Iterable[Item],
        submit: Callable[[Any, Item], Any],
        give_up: Callable[[Item, str], Any],
    ) -> Iterator[tuple[Item, Any]]:
        """(item, what its worker returned) for every item, as they finish.

        `submit(actor, item)` sends one item to an actor (returning the call's ObjectRef). An item
        whose worker died goes back to the queue; after `ATTEMPTS` deaths, or when the worker raised,
        `give_up(item, reason)` stands in for its result.
        """
        queue = deque((item, 0) for item in items)
        running: dict[Any, tuple[Any, Item, int]] = {}
        while queue or running:
            while queue and self.idle:
                item, deaths = queue.popleft()
                actor = self.idle.pop()
                running[submit(actor, item)] = (actor, item, deaths)
            ref = self._next([*running, *self.starting])
            if ref in self.starting:
                self._started(ref)
                continue
            actor, item, deaths = running.pop(ref)
            try:
                value = ray.get(ref)
            except RayActorError as error:
                self.starting[actor.info.remote()] = actor  # ready again once Ray has restarted it
                if deaths + 1 < ATTEMPTS:
                    self.note(f"a Ray worker died ({first_line(error)}); its work goes to the next free worker")
                    queue.appendleft((item, deaths + 1))
                    continue
                value = give_up(item, f"a Ray worker died {ATTEMPTS} times on it ({first_line(error)})")
            except RayTaskError as error:
                self.idle.append(actor)
                cause = error.cause or error
                value = give_up(item, f"a Ray worker failed on it: {type(cause).__name__}: {first_line(cause)}")
            else:
                self.idle.append(actor)
            yield item, value

    def close(self) -> None:
        """Stop every worker now; work in progress is dropped (none of it was written)."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    @staticmethod
    def _next(refs: list[Any]) -> Any:
        """The first of `refs` to finish (waiting in short steps, so that Ctrl-C is seen at once)."""
        while True:
            ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            if ready:
                return ready[0]

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            info = ray.get(ref)
        except ActorUnavailableError:  # died again while restarting: ask again
            self.starting[actor.info.remote()] = actor
            return
        except RayActorError as error:
            self.actors.remove(actor)
            self.note(f"a Ray worker is gone for good ({first_line(error)}); {len(self.actors)} left")
            if not self.actors:
                raise HardpromptError(f"every Ray worker died (the last: {first_line(error)})") from None
            return
        if info.get("error"):
            raise HardpromptError(info["error"])
        self.info = self.info or info
        self.idle.append(actor)
        self.note(f"Ray worker ready: pid {info['pid']} on {info['node']} ({info['device']})")


@contextmanager
def worker_pool(
    worker_class: type,
    args: tuple,
    *,
    device: str,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 1.0,
    note: Note = lambda _: None,
) -> Iterator[WorkerPool]:
    """A `WorkerPool` on the Ray `connection(address)`, stopped on exit (the options are `--ray`'s).

    `workers` defaults to as many as the cluster holds now; each holds `cpus_per_worker` CPUs and,
    on CUDA, `gpus_per_worker` GPUs.
    """
    with connection(address) as started_here:
        resources = worker_resources(device, cpus_per_worker, gpus_per_worker)
        fitting, kind = fitting_workers(resources)
        if not fitting and started_here:
            option = f"--{kind.lower()}s-per-worker"
            raise HardpromptError(f"this machine has no {kind} for a Ray worker: see --device and {option}")
        workers = max(1, fitting) if workers is None else workers
        if workers > fitting:
            note(f"{workers} Ray workers asked for; the cluster has {kind}s for {fitting} now, the rest wait")
        each = f"{resources['num_cpus']:g} CPU" + (f", {resources['num_gpus']:g} GPU" if resources["num_gpus"] else "")
        note(f"starting {workers} Ray workers ({each} each)")
        pool = WorkerPool(worker_class, (*args, cpus_per_worker), workers, resources, note)
        try:
            yield pool
        finally:
            pool.close()

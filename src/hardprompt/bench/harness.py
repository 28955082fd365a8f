"""Run tasks × methods × seeds at one budget and collect one row per run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import HardpromptError
from ..optim.registry import build_config, get_method, run_method
from ..optim.result import Result
from .peers import PEERS, nanogcg_available, nanogcg_steps
from .tasks import TASKS, TaskInstance

CURVE_POINTS = 200
UNBOUNDED_STEPS = 10**9


@dataclass(frozen=True)
class Budget:
    """The same limits for every run; at least one must be set. Unset steps means "no step limit"."""

    seconds: float | None = None
    forward_passes: int | None = None
    steps: int | None = None

    def validate(self) -> None:
        if self.seconds is None and self.forward_passes is None and self.steps is None:
            raise HardpromptError("give a budget: seconds, forward passes or steps")


def curve(result: Result, points: int = CURVE_POINTS) -> list[list[float]]:
    """(seconds, best score so far) pairs of a run, thinned to about `points` (the last one kept)."""
    pairs = list(zip(result.history_seconds, result.history, strict=True))
    stride = max(1, len(pairs) // points)
    thinned = pairs[::stride]
    if pairs and thinned[-1] != pairs[-1]:
        thinned.append(pairs[-1])
    return [[round(t, 3), round(score, 5)] for t, score in thinned]


def run_one(instance: TaskInstance, method: str, seed: int, budget: Budget) -> Result:
    """One method (registered, or an external peer) on one task instance within `budget`."""
    if method in PEERS:
        return PEERS[method](instance, budget.steps, budget.forward_passes, seed)
    config = build_config(
        method,
        prompt_len=instance.prompt_len,
        steps=budget.steps or UNBOUNDED_STEPS,
        max_seconds=budget.seconds,
        max_forward_passes=budget.forward_passes,
        seed=seed,
        progress=False,
    )
    config.validate(instance.max_prompt_len)
    return run_method(instance.objective, instance.vocab, config)


def run_suite(
    tasks: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    budget: Budget,
    task_options: dict[str, Any] | None = None,
    model: str | None = None,
    device: str = "cpu",
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (task instance, method, seed); `on_row(rows)` after each run (to save progress).

    A Ctrl-C inside a run keeps that run's best and ends the suite after it.
    """
    budget.validate()
    for name in methods:
        if name in PEERS:
            if not nanogcg_available():
                raise HardpromptError(f"{name} is not installed: pip install --no-deps nanogcg scipy")
            nanogcg_steps(budget.steps, budget.forward_passes, search_width=1)  # a budget it can keep, or an error
        else:
            get_method(name)
    unknown = [name for name in tasks if name not in TASKS]
    if unknown:
        raise HardpromptError(f"unknown task {unknown[0]!r}; choose from {', '.join(TASKS)}")
    rows: list[dict[str, Any]] = []
    for task_name in tasks:
        task = TASKS[task_name]
        for instance in task.build(model or task.default_model, device, task_options or {}):
            for method in methods:
                if method in PEERS and instance.peer_inputs is None:
                    continue  # an external optimizer runs only where its task supports it
                for seed in seeds:
                    result = run_one(instance, method, seed, budget)
                    rows.append(
                        {
                            "task": task_name,
                            "instance": instance.label,
                            "model": instance.model,
                            "method": method,
                            "hard": result.hard,
                            "seed": seed,
                            "prompt_len": instance.prompt_len,
                            "score": result.score,
                            "projected_score": result.projected_score,
                            "prompt": result.prompt,
                            "readability": result.readability,
                            "steps": result.steps,
                            "seconds": result.seconds,
                            "forward_passes": result.forward_passes,
                            **instance.metrics(result),
                            "curve": curve(result),
                        }
                    )
                    if on_row:
                        on_row(rows)
                    if result.interrupted:
                        raise KeyboardInterrupt
    return rows

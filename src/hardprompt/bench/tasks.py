"""Benchmark tasks. Each turns a loaded model into task instances: an objective, a vocabulary, a length.

To add a task (the shapes world, LM target strings, ...), write a function
`build(model, device, options) -> list[TaskInstance]` (load the model any way it needs; `encoder`
below caches text encoders across tasks) and register `Task(name, default_model, build, summary)`
in `TASKS`; the harness, the table and the plot need nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..apps.common import build_vocabulary
from ..apps.distill import distilled_length
from ..errors import HardpromptError
from ..io import read_lines
from ..models import TextEncoder, load_text_encoder
from ..objectives import FeatureSimilarity
from ..objectives.base import Objective
from ..optim.pez import random_allowed_ids
from ..optim.result import Result
from ..vocab import Vocabulary


@dataclass
class TaskInstance:
    """One problem: what every method optimizes, and extra metrics computed from its result."""

    label: str
    model: str
    objective: Objective
    vocab: Vocabulary
    prompt_len: int
    max_prompt_len: int | None = None
    metrics: Callable[[Result], dict[str, Any]] = field(default=lambda result: {})


@dataclass(frozen=True)
class Task:
    """A named family of task instances on a default model."""

    name: str
    default_model: str
    build: Callable[[str, str, dict[str, Any]], list[TaskInstance]]
    summary: str


@cache
def encoder(model: str, device: str) -> TextEncoder:
    """A text encoder loaded once per (model, device) for all tasks of a suite."""
    return load_text_encoder(model, device=device)


def recovered_fraction(found: list[int], planted: list[int]) -> float:
    """The fraction of planted tokens present in `found` (as a multiset: order ignored, repeats counted)."""
    overlap = Counter(found) & Counter(planted)
    return sum(overlap.values()) / len(planted)


def planted_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """Planted-prompt recovery: target = features of a random allowed token sequence; recover it from random init."""
    text_encoder = encoder(model, device)
    length = int(options.get("planted_len", 8))
    count = int(options.get("planted_count", 2))
    vocab = build_vocabulary(text_encoder)
    instances = []
    for index in range(count):
        planted = random_allowed_ids(vocab.allowed_ids, (length,), seed=10_000 + index).tolist()
        objective = FeatureSimilarity(text_encoder, text_encoder.encode_token_ids(planted))

        def metrics(result: Result, planted: list[int] = planted) -> dict[str, Any]:
            return {"recovered": recovered_fraction(result.token_ids, planted), "planted": vocab.decode(planted)}

        instances.append(
            TaskInstance(
                f"planted-{index}", text_encoder.name, objective, vocab, length, text_encoder.max_prompt_len, metrics
            )
        )
    return instances


def distill_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """Prompt distillation of each prompt of a file (option `prompts`) at `ratio` (0.3) of its length."""
    path = options.get("prompts")
    if not path:
        raise HardpromptError("the distill task needs a prompt set: --prompts FILE")
    ratio = float(options.get("ratio", 0.3))
    text_encoder = encoder(model, device)
    vocab = build_vocabulary(text_encoder)
    instances = []
    for index, text in enumerate(read_lines(Path(path))):
        objective = FeatureSimilarity(text_encoder, text_encoder.encode_texts([text]))
        length = distilled_length(text_encoder.count_tokens(text), ratio)
        label = f"distill-{index}"
        instances.append(TaskInstance(label, text_encoder.name, objective, vocab, length, text_encoder.max_prompt_len))
    return instances


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("planted", "minilm", planted_instances, "recover a planted random token sequence from its features"),
        Task("distill", "minilm", distill_instances, "distill each prompt of a file to 0.3 of its length"),
    )
}

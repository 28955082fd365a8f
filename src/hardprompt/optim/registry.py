"""Optimizers by name (a subset of the shape of the `optim` branch's registry, which replaces this file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..objectives.base import Objective
from ..vocab import Vocabulary
from . import pez
from .result import Result


@dataclass(frozen=True)
class Method:
    """One optimizer: its config dataclass and its `run(objective, vocab, config)`."""

    name: str
    config_class: type
    run: Callable[[Objective, Vocabulary, Any], Result]
    summary: str
    hard: bool = True


METHODS: dict[str, Method] = {
    "pez": Method("pez", pez.PEZConfig, pez.run, "projected gradient descent with a continuous state (the paper)")
}

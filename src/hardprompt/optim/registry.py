"""Optimizers by name: name -> run(objective, vocab, config) -> Result."""

from __future__ import annotations

from collections.abc import Callable

from . import pez

METHODS: dict[str, Callable] = {"pez": pez.run}

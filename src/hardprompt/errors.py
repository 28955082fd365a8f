"""The one exception type that reaches the user as a single line (exit code 2 on the CLI), and its warning."""

from __future__ import annotations

import dataclasses
import math


class HardpromptError(Exception):
    """A problem with the user's input or environment, phrased for the user."""


class HardpromptWarning(UserWarning):
    """Something the user should know that does not stop the run (one line on the CLI)."""


def require_finite_fields(config: object) -> None:
    """Raise HardpromptError if a float field of the dataclass `config` is nan or infinite."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise HardpromptError(f"{field.name.replace('_', ' ')} must be a finite number (got {value})")


#: Seeds are integers in [0, MAX_SEED]: torch's generators take at most 64 bits, and image i uses seed + i.
MAX_SEED = 2**63 - 1


def require_seed(seed: int) -> None:
    """Raise HardpromptError unless `seed` is an integer in [0, MAX_SEED]."""
    if not 0 <= seed <= MAX_SEED:
        raise HardpromptError(f"a seed must be an integer from 0 to {MAX_SEED} (got {seed})")

"""Measuring image → prompt in the shapes world: the fixed evaluation scenes and word recovery.

The tests and the benchmark invert many scenes at once with `hardprompt.invert_each`.
"""

from __future__ import annotations

import random
import re

from .render import Scene, random_scene

EVALUATION_SEED = 2026
"""Seed of the fixed evaluation scenes (the towers were trained on seeds 0 and 1, held out on 999999)."""


def evaluation_scenes(count: int, seed: int = EVALUATION_SEED) -> list[Scene]:
    """The fixed set of `count` held-out scenes used by the tests and the benchmark."""
    rng = random.Random(seed)
    return [random_scene(rng) for _ in range(count)]


def prompt_words(prompt: str) -> set[str]:
    """The lower-case words of a prompt."""
    return set(re.findall(r"[a-z]+", prompt.lower()))


def word_recovery(prompt: str, scene: Scene) -> float:
    """Fraction of the scene's color and shape words that appear as words in `prompt`."""
    content = scene.content_words()
    return len(content & prompt_words(prompt)) / len(content)

"""Text → images in the shapes world: the world's stand-in for Stable Diffusion.

`ShapesGenerator` reads the scene words of a prompt (colors, shapes, sizes, positions, styles,
"background"; the vocabulary of `shapes.render`), draws whatever the text leaves unsaid from the
seed, and renders the scene. It is what `--generator shapes` (reproduce) and `--model shapes`
(generate) load, so the Table 1 harness runs end to end offline, scored by the reference tower.

Reading rules, made for captions of the world's grammar and for bags of words such as PEZ prompts:

- a shape word makes an object, with the color, size and position words seen since the previous
  shape ("a small red circle"); a position right after a shape belongs to it ("circle on the left");
- a color followed by "background" is the background ("on a yellow background");
- the first style word is the style ("striped style"); plurals and a few synonyms count ("stars", "grey");
- words left at the end without a shape fill what the last object lacks, a color the last object
  already has becomes the background if none was named, and with no shape at all they describe one
  object of a random shape;
- at most 3 objects and one per position, as in the world.

Unsaid, for each image from its own seed: the shape and color of a named object, the positions left
free, the background (never an object's color), the style; an object named without a size is
medium, as in the world's captions. A prompt that names no object gets 1–3 random objects.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..generation import GenerationConfig
from .render import (
    BACKGROUND_COLORS,
    COLORS,
    IMAGE_SIZE,
    OBJECT_COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    STYLES,
    Scene,
    SceneObject,
    render,
)

GENERATOR_NAME = "shapes"
MAX_OBJECTS = 3
DEFAULT_SIZE = "medium"
"""The size of an object whose size the text does not say (captions name only small and large)."""

_SYNONYMS = {
    "grey": "gray",
    "centre": "center",
    "middle": "center",
    "big": "large",
    "tiny": "small",
    "stripes": "striped",
    "stripy": "striped",
    "dots": "dotted",
    "outline": "outlined",
    "pixel": "pixelated",
    "pixels": "pixelated",
    "blurry": "blurred",
    "blur": "blurred",
    "solid": "filled",
}
_KINDS: dict[str, str] = {
    **{word: "color" for word in COLORS},
    **{word: "shape" for word in SHAPES},
    **{word: "size" for word in SIZES},
    **{word: "position" for word in POSITIONS},
    **{word: "style" for word in STYLES},
    "background": "background",
}


def scene_word(word: str) -> tuple[str, str] | None:
    """(kind, world word) for a word of the world's vocabulary, its plural or synonym; None otherwise."""
    word = _SYNONYMS.get(word, word)
    if word not in _KINDS and word.endswith("s"):
        singular = word[:-2] if word.endswith("ses") else word[:-1]  # crosses, stars
        word = singular if _KINDS.get(singular) == "shape" else word
    kind = _KINDS.get(word)
    return (kind, word) if kind else None


@dataclass
class ObjectSketch:
    """What the text says about one object; None where it says nothing."""

    shape: str | None = None
    color: str | None = None
    size: str | None = None
    position: str | None = None


@dataclass
class SceneSketch:
    """What the text says about a scene; `fill` draws the rest."""

    objects: list[ObjectSketch] = field(default_factory=list)
    background: str | None = None
    style: str | None = None

    def fill(self, rng: random.Random) -> Scene:
        """A complete scene: the sketch, with everything unsaid drawn from `rng`."""
        if self.objects:
            sketches = [ObjectSketch(**vars(o)) for o in self.objects]
        else:
            sketches = [ObjectSketch(size=rng.choice(SIZES)) for _ in range(rng.randint(1, MAX_OBJECTS))]
        taken: set[str] = set()
        for sketch in sketches:  # one object per position: a repeated position is drawn again
            if sketch.position in taken:
                sketch.position = None
            if sketch.position is not None:
                taken.add(sketch.position)
        free = rng.sample([p for p in POSITIONS if p not in taken], sum(s.position is None for s in sketches))
        objects = []
        for sketch in sketches:
            color = sketch.color or rng.choice([c for c in OBJECT_COLORS if c != self.background] or OBJECT_COLORS)
            objects.append(
                SceneObject(
                    shape=sketch.shape or rng.choice(SHAPES),
                    color=color,
                    size=sketch.size or DEFAULT_SIZE,
                    position=sketch.position or free.pop(0),
                )
            )
        used = {o.color for o in objects}
        background = self.background or rng.choice([c for c in BACKGROUND_COLORS if c not in used])
        return Scene(objects=tuple(objects), background=background, style=self.style or rng.choice(STYLES))


def parse_prompt(text: str) -> SceneSketch:
    """What `text` says about a scene, by the reading rules of this module."""
    sketch = SceneSketch()
    pending = ObjectSketch()  # color, size, position words since the last shape
    loose: list[str] = []  # colors that neither a shape nor "background" took
    for raw in re.findall(r"[a-z]+", text.lower()):
        found = scene_word(raw)
        if found is None:
            continue
        kind, word = found
        if kind == "shape":
            pending.shape = word
            sketch.objects.append(pending)
            pending = ObjectSketch()
        elif kind == "background":
            if pending.color is not None:
                sketch.background, pending.color = pending.color, None
        elif kind == "style":
            sketch.style = sketch.style or word
        elif kind == "position" and pending == ObjectSketch() and sketch.objects and not sketch.objects[-1].position:
            sketch.objects[-1].position = word
        else:
            if kind == "color" and pending.color is not None:
                loose.append(pending.color)
            setattr(pending, kind, word)
    if pending != ObjectSketch():
        if not sketch.objects:
            sketch.objects.append(pending)
        else:
            last = sketch.objects[-1]
            last.size = last.size or pending.size
            last.position = last.position or pending.position
            if pending.color is not None:
                if last.color is None:
                    last.color = pending.color
                else:
                    loose.append(pending.color)
    if sketch.background is None and loose:
        sketch.background = loose[-1]
    del sketch.objects[MAX_OBJECTS:]
    return sketch


class ShapesGenerator:
    """A `TextToImage` for the shapes world: prompt → scenes (image i from seed + i) → rendered images.

    Of `GenerationConfig` it uses `n`, `seed` and `size` (default 64 pixels); denoising steps, guidance
    and the negative prompt have no meaning here and are ignored.
    """

    name = GENERATOR_NAME
    device = torch.device("cpu")

    def scenes(self, prompt: str, config: GenerationConfig | None = None) -> list[Scene]:
        """The `config.n` scenes drawn for `prompt`; scene i depends only on the prompt and `config.seed + i`."""
        config = config or GenerationConfig()
        config.validate()
        sketch = parse_prompt(prompt)
        return [sketch.fill(random.Random(config.seed + i)) for i in range(config.n)]

    def generate(self, prompt: str, config: GenerationConfig | None = None) -> list[Image.Image]:
        """The rendered `scenes` of `prompt`, `config.size` pixels square."""
        config = config or GenerationConfig()
        return [render(scene, size=config.size or IMAGE_SIZE) for scene in self.scenes(prompt, config)]

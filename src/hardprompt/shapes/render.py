"""Procedural scenes of colored shapes, their images (PIL) and their captions (a small grammar).

A scene has 1–3 objects (shape, color, size, position), a background color and a style
shared by the whole image. Everything is deterministic given a `random.Random`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "diamond")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "blue": (30, 70, 220),
    "purple": (130, 50, 180),
    "pink": (245, 130, 190),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
    "gray": (140, 140, 140),
}
OBJECT_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black")
BACKGROUND_COLORS = ("white", "gray", "yellow", "blue", "green", "pink", "black")
SIZES = ("small", "medium", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
STYLES = ("filled", "outlined", "striped", "dotted", "pixelated", "blurred")

IMAGE_SIZE = 64
_SUPERSAMPLE = 4
_CENTERS = {"left": (0.24, 0.5), "right": (0.76, 0.5), "top": (0.5, 0.24), "bottom": (0.5, 0.76), "center": (0.5, 0.5)}
_RADII = {"small": 0.09, "medium": 0.14, "large": 0.19}
POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}


@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene."""

    shape: str
    color: str
    size: str
    position: str


@dataclass(frozen=True)
class Scene:
    """A rendered world: objects on a background, all in one style."""

    objects: tuple[SceneObject, ...]
    background: str
    style: str

    def content_words(self) -> set[str]:
        """The color and shape words of the scene (objects and background)."""
        words = {o.color for o in self.objects} | {o.shape for o in self.objects}
        return words | {self.background}


def random_scene(
    rng: random.Random,
    style: str | None = None,
    max_objects: int = 3,
    objects: tuple[SceneObject, ...] | None = None,
) -> Scene:
    """A random scene; `style` or `objects` fix those parts, the rest is drawn from `rng`."""
    if objects is None:
        count = rng.randint(1, max_objects)
        positions = rng.sample(POSITIONS, count)
        objects = tuple(
            SceneObject(rng.choice(SHAPES), rng.choice(OBJECT_COLORS), rng.choice(SIZES), position)
            for position in positions
        )
    used = {o.color for o in objects}
    background = rng.choice([c for c in BACKGROUND_COLORS if c not in used])
    return Scene(objects=objects, background=background, style=style or rng.choice(STYLES))


def caption(scene: Scene) -> str:
    """E.g. "a red circle on the left and a small blue star at the top, outlined style, on a yellow background"."""
    phrases = []
    for obj in scene.objects:
        size = "" if obj.size == "medium" else f"{obj.size} "
        words = f"{size}{obj.color} {obj.shape}"
        article = "an" if words[0] in "aeiou" else "a"
        phrases.append(f"{article} {words} {POSITION_PHRASES[obj.position]}")
    return f"{' and '.join(phrases)}, {scene.style} style, on a {scene.background} background"


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """The outline polygon of a shape centered at (cx, cy) with radius r."""
    if shape == "circle":
        angles = [2 * math.pi * k / 48 for k in range(48)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.42
            angle = -math.pi / 2 + math.pi * k / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "cross":
        a, b = r, r * 0.33
        return [
            (cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
            (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b),
        ]  # fmt: skip
    if shape == "heart":
        points = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((cx + r * x / 16, cy - r * (y + 2) / 15))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def _pattern_mask(style: str, size: int) -> Image.Image | None:
    """A mask (L) that keeps stripes or dots of a filled shape, for those styles."""
    if style not in ("striped", "dotted"):
        return None
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    step = size // 16
    if style == "striped":
        for x in range(-size, size, step):
            draw.polygon([(x, 0), (x + step // 2, 0), (x + step // 2 + size, size), (x + size, size)], fill=255)
    else:
        dot = step * 0.32
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=255)
    return mask


def render(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The RGB image of `scene`, `size` pixels square (drawn supersampled, then downscaled)."""
    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLORS[scene.background])
    pattern = _pattern_mask(scene.style, big)
    for obj in scene.objects:
        cx, cy = (c * big for c in _CENTERS[obj.position])
        points = _shape_points(obj.shape, cx, cy, _RADII[obj.size] * big)
        color = COLORS[obj.color]
        if scene.style == "outlined":
            ImageDraw.Draw(image).polygon(points, outline=color, width=max(1, big // 40))
            continue
        shape_mask = Image.new("L", (big, big), 0)
        ImageDraw.Draw(shape_mask).polygon(points, fill=255)
        if pattern is not None:
            # A thin outline keeps the silhouette readable under the pattern.
            ImageDraw.Draw(image).polygon(points, outline=color, width=max(1, big // 100))
            shape_mask = Image.composite(pattern, Image.new("L", (big, big), 0), shape_mask)
        image.paste(color, mask=shape_mask)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    if scene.style == "pixelated":
        block = max(1, size // 16)
        image = image.resize((size // block, size // block), Image.Resampling.BILINEAR)
        image = image.resize((size, size), Image.Resampling.NEAREST)
    elif scene.style == "blurred":
        image = image.filter(ImageFilter.GaussianBlur(radius=size / 40))
    return image

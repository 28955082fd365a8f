"""Write a set of shapes scenes for `hardprompt reproduce`: images, captions and a phrase bank.

    python -m hardprompt.shapes.scenes --count 20 --seed 2026 --out scenes/

writes scenes/00000.png …, scenes/scenes.jsonl ({"image", "caption"} per line, paths relative to
the folder) and scenes/phrases.txt, the world's grammar as a phrase bank for `--baseline-bank`.
The default seed gives the held-out evaluation scenes of `shapes.evaluation` (never trained on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import HardpromptError
from ..io import atomic_save_image, atomic_write_text
from .evaluation import EVALUATION_SEED, evaluation_scenes
from .render import (
    BACKGROUND_COLORS,
    IMAGE_SIZE,
    OBJECT_COLORS,
    POSITION_PHRASES,
    SHAPES,
    SIZES,
    STYLES,
    caption,
    render,
)

SCENES_FILE = "scenes.jsonl"
PHRASES_FILE = "phrases.txt"


def grammar_phrases() -> list[str]:
    """The pieces captions are made of: "red circle", "small red circle", "red circle on the left",
    "on the left", "striped style", "on a blue background"."""
    objects = [f"{color} {shape}" for color in OBJECT_COLORS for shape in SHAPES]
    sized = [f"{size} {obj}" for size in SIZES if size != "medium" for obj in objects]
    placed = [f"{obj} {phrase}" for obj in objects for phrase in POSITION_PHRASES.values()]
    styles = [f"{style} style" for style in STYLES]
    backgrounds = [f"on a {color} background" for color in BACKGROUND_COLORS]
    return objects + sized + placed + list(POSITION_PHRASES.values()) + styles + backgrounds


def write_scene_set(out: str | Path, count: int, seed: int = EVALUATION_SEED, size: int = IMAGE_SIZE) -> Path:
    """Render `count` scenes into `out`; returns the path of the JSONL file."""
    if count < 1:
        raise HardpromptError(f"the number of scenes must be at least 1 (got {count})")
    if size < 8:
        raise HardpromptError(f"the image size must be at least 8 pixels (got {size})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HardpromptError(f"{out} exists and is not a folder")
    lines = []
    for index, scene in enumerate(evaluation_scenes(count, seed)):
        name = f"{index:05d}.png"
        atomic_save_image(out / name, render(scene, size=size))
        lines.append(json.dumps({"image": name, "caption": caption(scene)}) + "\n")
    atomic_write_text(out / PHRASES_FILE, "\n".join(grammar_phrases()) + "\n")
    atomic_write_text(out / SCENES_FILE, "".join(lines))
    return out / SCENES_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardprompt.shapes.scenes", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="number of scenes (20)")
    parser.add_argument("--seed", type=int, default=EVALUATION_SEED, help=f"scene seed ({EVALUATION_SEED})")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, help=f"image size in pixels ({IMAGE_SIZE})")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        path = write_scene_set(args.out, args.count, args.seed, args.size)
    except HardpromptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

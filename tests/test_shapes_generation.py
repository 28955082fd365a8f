"""The shapes world as a text-to-image generator, and `reproduce` end to end in that world."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hardprompt.apps.generators import load_generator
from hardprompt.cli import main
from hardprompt.generation import GenerationConfig
from hardprompt.shapes import Scene, SceneObject, caption, random_scene, render
from hardprompt.shapes.evaluation import evaluation_scenes
from hardprompt.shapes.generator import ObjectSketch, SceneSketch, ShapesGenerator, parse_prompt
from hardprompt.shapes.render import COLORS
from hardprompt.shapes.scenes import PHRASES_FILE, grammar_phrases, write_scene_set

GENERATOR = ShapesGenerator()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_a_caption_is_read_back_as_its_scene():
    """Captions say everything, so their scene comes back whatever the seed."""
    rng = random.Random(11)
    scenes = [random_scene(rng) for _ in range(300)] + evaluation_scenes(20)
    for index, scene in enumerate(scenes):
        assert parse_prompt(caption(scene)).fill(random.Random(index)) == scene, caption(scene)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SceneSketch()),
        ("a dog in a park", SceneSketch()),
        (
            "Two BIG red Stars and grey crosses on the left",
            SceneSketch([ObjectSketch("star", "red", "large"), ObjectSketch("cross", "gray", None, "left")]),
        ),
        # A position before a shape is the next object's; right after a shape it is that shape's.
        ("left blue heart top", SceneSketch([ObjectSketch("heart", "blue", None, "left")])),
        (
            "colorful style green circle outlined circular blue top",
            SceneSketch([ObjectSketch("circle", "green", None, "top")], background="blue", style="outlined"),
        ),
        ("on a pink background, stripes, dotted", SceneSketch(background="pink", style="striped")),
        ("red", SceneSketch([ObjectSketch(color="red")])),
        ("small square yellow centre", SceneSketch([ObjectSketch("square", "yellow", "small", "center")])),
        (
            "star circle heart cross diamond",
            SceneSketch([ObjectSketch("star"), ObjectSketch("circle"), ObjectSketch("heart")]),
        ),
    ],
)
def test_parse_prompt(text, expected):
    assert parse_prompt(text) == expected


def test_fill_draws_only_what_the_text_leaves_unsaid():
    sketch = parse_prompt("a red star on the left and a blue star on the left")
    fills = [sketch.fill(random.Random(seed)) for seed in range(40)]
    for scene in fills:
        first, second = scene.objects
        assert (first.shape, first.color, first.size, first.position) == ("star", "red", "medium", "left")
        assert (second.shape, second.color) == ("star", "blue") and second.position != "left"
        assert scene.background not in {"red", "blue"}
    assert len({scene.style for scene in fills}) > 1 and len({scene.background for scene in fills}) > 1
    unsaid = [SceneSketch().fill(random.Random(seed)) for seed in range(40)]
    assert {len(scene.objects) for scene in unsaid} == {1, 2, 3}
    assert all(o.color != scene.background for scene in unsaid for o in scene.objects)


def test_the_images_show_what_the_text_says():
    text = "a large red circle in the center, filled style, on a white background"
    images = GENERATOR.generate(text, GenerationConfig(n=3, seed=0))
    expected = render(Scene((SceneObject("circle", "red", "large", "center"),), "white", "filled"))
    for image in images:
        assert image.size == (64, 64)
        array = pixels(image)
        assert tuple(array[32, 32]) == COLORS["red"] and tuple(array[2, 2]) == COLORS["white"]
        assert np.array_equal(array, pixels(expected))
    # Only the color is said: every image has a red circle, the rest varies with the seed.
    scenes = GENERATOR.scenes("a red circle", GenerationConfig(n=6, seed=3))
    assert all([(o.shape, o.color) for o in scene.objects] == [("circle", "red")] for scene in scenes)
    for scene, image in zip(scenes, GENERATOR.generate("a red circle", GenerationConfig(n=6, seed=3)), strict=True):
        red = (np.abs(pixels(image) - np.array(COLORS["red"])).sum(axis=2) < 60).sum()
        assert red >= 10, f"no red pixels for {scene}"


def test_generation_is_deterministic_per_seed():
    config = GenerationConfig(n=3, seed=5, size=32)
    first = [pixels(image) for image in GENERATOR.generate("a striped star", config)]
    again = [pixels(image) for image in ShapesGenerator().generate("a striped star", config)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (32, 32, 3)
    alone = GENERATOR.generate("a striped star", GenerationConfig(n=1, seed=6, size=32))[0]
    assert np.array_equal(pixels(alone), first[1]), "image i depends on seed + i only"
    other = GENERATOR.generate("a striped star", GenerationConfig(n=3, seed=50, size=32))
    assert not all(np.array_equal(a, pixels(b)) for a, b in zip(first, other, strict=True))


def test_load_generator_does_not_import_diffusers():
    code = (
        "import sys; sys.modules['diffusers'] = None\n"
        "from hardprompt.apps.generators import load_generator\n"
        "from hardprompt.generation import GenerationConfig\n"
        "generator = load_generator('shapes')\n"
        "print(generator.name, len(generator.generate('a blue heart', GenerationConfig(n=2))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["shapes", "2"]
    assert load_generator("shapes").name == "shapes"


def test_generate_cli_with_the_shapes_model(tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["generate", "a small green heart", "--model", "shapes", "--n", "3", "--seed", "2", "--concat", "at the top"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}/sheet.png"
    record = json.loads((out / "generation.json").read_text())
    assert record["text"] == "a small green heart at the top" and record["model"] == "shapes"
    expected = GENERATOR.generate(record["text"], GenerationConfig(n=3, seed=2))
    assert len(record["images"]) == 3
    for path, image in zip(record["images"], expected, strict=True):
        assert np.array_equal(pixels(Image.open(path)), pixels(image))
    assert Image.open(out / "sheet.png").width == 8 + 3 * (256 + 8)
    assert main(["generate", "x", "--model", "shapes", "--size", "30", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "multiple of 8" in err


def test_scene_set_writer(tmp_path, capsys):
    out = tmp_path / "scenes"
    assert main_scenes(["--count", "3", "--seed", "7", "--out", str(out)]) == 0
    jsonl = out / "scenes.jsonl"
    assert capsys.readouterr().out.strip() == str(jsonl)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    rng = random.Random(7)
    for index, (line, scene) in enumerate(zip(lines, [random_scene(rng) for _ in range(3)], strict=True)):
        assert line == {"image": f"{index:05d}.png", "caption": caption(scene)}
        assert np.array_equal(pixels(Image.open(out / line["image"])), pixels(render(scene)))
    phrases = (out / PHRASES_FILE).read_text().splitlines()
    assert phrases == grammar_phrases() and len(set(phrases)) == len(phrases)
    assert {"red circle", "small red circle", "red circle on the left", "striped style"} <= set(phrases)
    assert "on a blue background" in phrases
    assert all(parse_prompt(phrase) != SceneSketch() for phrase in phrases), "every phrase says something"
    assert main_scenes(["--count", "0", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "at least 1" in err


def main_scenes(argv: list[str]) -> int:
    from hardprompt.shapes.scenes import main as scenes_main

    return scenes_main(argv)


@pytest.mark.slow
def test_reproduce_in_the_shapes_world_end_to_end(tmp_path, capsys):
    """3 scenes, 40 PEZ steps: summary table, resumption, and caption ≫ random floor by the reference tower."""
    source = write_scene_set(tmp_path / "scenes", count=3)
    out = tmp_path / "run"
    argv = ["reproduce", str(source), "--out", str(out), "--model", "shapes", "--generator", "shapes"]
    argv += ["--scorer", "shapes-reference", "--baseline-bank", str(source.parent / PHRASES_FILE)]
    argv += ["--random-baseline", "--prompt-len", "8", "--steps", "40", "--n", "2", "--device", "cpu", "--quiet"]
    assert main([*argv, "--limit", "2"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["finished"] == 2
    first = sorted((out / "records").iterdir())
    mtimes = [path.stat().st_mtime_ns for path in first]

    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"{out}/summary.md"
    assert [path.stat().st_mtime_ns for path in first] == mtimes, "finished scenes are not redone"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == 3 and summary["settings"]["generator"] == "shapes"
    rows = {row["method"]: row for row in summary["rows"]}
    assert list(rows) == ["pez", "bank", "caption", "random-tokens"]
    assert all(row["images"] == 3 for row in rows.values())
    markdown = (out / "summary.md").read_text()
    assert "| random tokens (floor) | 3 |" in markdown and "`shapes-reference`" in markdown

    for path in sorted((out / "records").iterdir()):
        record = json.loads(path.read_text())
        methods = record["methods"]
        # The caption says everything, so its images are the target itself.
        assert methods["caption"]["reference_scores"] == pytest.approx([1.0, 1.0], abs=1e-4)
        assert methods["caption"]["reference_score"] > methods["random-tokens"]["reference_score"]
        assert methods["random-tokens"]["tokens"] == methods["pez"]["tokens"] == 8
        assert record["optimization"]["method"] == "pez"
    assert rows["pez"]["reference_mean"] > rows["random-tokens"]["reference_mean"]
    assert rows["bank"]["reference_mean"] > rows["random-tokens"]["reference_mean"]

    again = main(argv)
    assert again == 0 and json.loads((out / "summary.json").read_text()) == summary

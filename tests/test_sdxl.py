"""SDXL: `generate` runs a StableDiffusionXLPipeline (tiny, random, built from configs)."""

import json

import numpy as np
import pytest
from tiny_diffusion import save_tiny_sdxl

from hardprompt.cli import main
from hardprompt.generation import GenerationConfig, ImageGenerator

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny_sdxl_dir(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


def test_generate_runs_an_sdxl_pipeline_with_its_two_text_encoders(tiny_sdxl_dir, tmp_path, capsys):
    generator = ImageGenerator(str(tiny_sdxl_dir), device="cpu", progress=False)
    assert type(generator.pipeline).__name__ == "StableDiffusionXLPipeline"
    config = GenerationConfig(n=2, steps=2, seed=5)
    first = generator.generate("a red circle", config)
    assert [image.size for image in first] == [(32, 32), (32, 32)]
    again = generator.generate("a red circle", GenerationConfig(n=1, steps=2, seed=6))
    assert np.array_equal(np.asarray(first[1]), np.asarray(again[0])), "image i uses seed + i"
    other = generator.generate("a blue square", GenerationConfig(n=1, steps=2, seed=5))
    assert not np.array_equal(np.asarray(first[0]), np.asarray(other[0])), "the prompt must reach the model"
    out = tmp_path / "generated"
    argv = ["generate", "a red circle", "--model", tiny_sdxl_dir, "--steps", 2, "--n", 1, "--device", "cpu"]
    assert main([str(a) for a in [*argv, "--quiet", "--out", out]]) == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["model"] == str(tiny_sdxl_dir) and (out / "image-0.png").is_file() and (out / "sheet.png").is_file()
    assert capsys.readouterr().out.strip() == record["sheet"]

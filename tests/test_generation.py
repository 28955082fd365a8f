"""Generation (tiny diffusers pipeline), contact sheets, reference scoring and the bank baseline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hardprompt.apps.bank import PhraseBank
from hardprompt.apps.score import reference_score
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.generation import GenerationConfig, ImageGenerator, compose_prompt, contact_sheet

SRC = Path(__file__).resolve().parents[1] / "src"


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_compose_prompt_template_and_concat():
    assert compose_prompt(" tiger ") == "tiger"
    assert compose_prompt("ink wash", template="a tiger in the style of {}") == "a tiger in the style of ink wash"
    assert compose_prompt("a cat", concat="on the moon") == "a cat on the moon"
    assert compose_prompt("x", template="{} y", concat="z") == "x y z"
    for template in ("no slot", "{} and {}"):
        with pytest.raises(HardpromptError, match="exactly once"):
            compose_prompt("x", template=template)
    with pytest.raises(HardpromptError):
        compose_prompt("  ")


def test_generation_is_seeded_per_image(tiny_sd):
    config = GenerationConfig(n=2, steps=2, seed=3, batch_size=1)
    first = tiny_sd.generate("a red circle", config)
    again = tiny_sd.generate("a red circle", GenerationConfig(n=2, steps=2, seed=3))
    assert [im.size for im in first] == [(32, 32), (32, 32)]
    for a, b in zip(first, again, strict=True):  # batch 1 vs batch 2: kernels may round differently
        difference = np.abs(pixels(a) - pixels(b)).max()
        assert difference <= 2, "same seed and prompt must give the same images, whatever the batch size"
    shifted = tiny_sd.generate("a red circle", GenerationConfig(n=1, steps=2, seed=4))
    assert np.array_equal(pixels(first[1]), pixels(shifted[0])), "image i must use seed + i whatever n is"
    assert not np.array_equal(pixels(first[0]), pixels(first[1]))
    other_prompt = tiny_sd.generate("a blue square", GenerationConfig(n=1, steps=2, seed=3))
    assert not np.array_equal(pixels(first[0]), pixels(other_prompt[0])), "the prompt must reach the model"


def test_contact_sheet_layout():
    images = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (64, 32), (0, 0, 255))]
    target = Image.new("RGB", (40, 40), (0, 255, 0))
    sheet = contact_sheet(images, "a caption " * 40, target, cell=64)
    assert sheet.width == 8 + 3 * (64 + 8)
    array = np.asarray(sheet)
    assert tuple(array[8 + 14 + 32, 8 + 32]) == (0, 255, 0), "target first"
    assert tuple(array[8 + 14 + 32, 8 + 72 + 32]) == (255, 0, 0)
    assert tuple(array[8 + 14 + 32, 8 + 2 * 72 + 32]) == (0, 0, 255)
    caption_rows = array[8 + 14 + 64 + 8 :]
    assert (caption_rows < 128).any(), "the caption is drawn below the images"
    assert contact_sheet(images, "short").height < sheet.height
    with pytest.raises(HardpromptError):
        contact_sheet([], "nothing")


def test_generate_cli_writes_images_sheet_and_record(tiny_sd_dir, images, tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["generate", "red circle", "--model", str(tiny_sd_dir), "--device", "cpu", "--n", "2", "--steps", "2"]
    argv += ["--seed", "5", "--template", "a photo of {}", "--concat", "at night", "--target", str(images[0])]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}/sheet.png"
    record = json.loads((out / "generation.json").read_text())
    assert record["text"] == "a photo of red circle at night"
    assert record["config"]["seed"] == 5 and record["config"]["n"] == 2
    generated = [Image.open(path) for path in record["images"]]
    assert len(generated) == 2 and all(im.size == (32, 32) for im in generated)
    assert Image.open(out / "sheet.png").width == 8 + 3 * (256 + 8)
    direct = ImageGenerator(str(tiny_sd_dir), device="cpu", progress=False).generate(
        "a photo of red circle at night", GenerationConfig(n=2, steps=2, seed=5)
    )
    for saved, fresh in zip(generated, direct, strict=True):
        assert np.array_equal(pixels(saved.convert("RGB")), pixels(fresh)), "saved PNGs are the generated images"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--template", "no slot"], "exactly once"),
        (["--n", "0"], "at least 1"),
        (["--size", "30"], "multiple of 8"),
        (["--model", "/no/such/pipeline"], "not found"),
        (["--model", "."], "not a diffusers pipeline folder"),
        (["--target", "/no/such.png"], "image not found"),
    ],
)
def test_generate_bad_input_is_one_line_exit_2(tiny_sd_dir, tmp_path, capsys, extra, message):
    argv = ["generate", "x", "--model", str(tiny_sd_dir), "--device", "cpu", "--out", str(tmp_path), "--quiet"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_package_works_without_diffusers(tmp_path):
    """hardprompt imports without diffusers; `generate` then says how to install it, in one line."""
    code = (
        "import sys; sys.modules['diffusers'] = None\n"
        "import hardprompt, hardprompt.generation\n"
        "from hardprompt.cli import main\n"
        f"sys.exit(main(['generate', 'x', '--device', 'cpu', '--out', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "hardprompt: error: image generation needs diffusers: pip install 'hardprompt[diffusion]' "
        "(or pip install diffusers)"
    ]


def test_reference_score(tiny_clip, images):
    same = reference_score([images[0]], [images[0], images[1]], tiny_clip)
    assert same.per_image[0] == pytest.approx(1.0, abs=1e-5)
    features = tiny_clip.encode_images([Image.open(p).convert("RGB") for p in images])
    expected = float(features[1] @ features[0])
    assert same.per_image[1] == pytest.approx(expected, abs=1e-5) and same.per_image[1] < 0.9999
    assert same.mean == pytest.approx((1.0 + expected) / 2, abs=1e-5)
    two_targets = reference_score(images[:2], [images[2]], tiny_clip)
    assert two_targets.per_image[0] == pytest.approx(float(features[2] @ features[:2].T.mean(dim=1)), abs=1e-5)


def test_score_cli(tiny_clip_dir, images, tmp_path, capsys):
    out = tmp_path / "score.json"
    folder = images[0].parent
    argv = ["score", str(images[0]), "--generated", str(folder), "--scorer", str(tiny_clip_dir), "--device", "cpu"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    record = json.loads(out.read_text())
    assert captured.out.strip() == f"{record['mean']:.4f}"
    assert record["generated"] == [str(p) for p in images] and len(record["per_image"]) == 3
    assert record["per_image"][0] == pytest.approx(1.0, abs=1e-5)
    assert len(captured.err.strip().splitlines()) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["score", str(images[0]), "--generated", str(empty), "--scorer", str(tiny_clip_dir)]) == 2
    assert "no images in" in capsys.readouterr().err
    missing = ["score", str(tmp_path / "missing.png"), "--generated", str(folder), "--scorer", "nobody/no-such-clip"]
    assert main(missing) == 2, "input is checked before the scorer is loaded"
    assert capsys.readouterr().err.strip() == f"hardprompt: error: image not found: {tmp_path / 'missing.png'}"


def test_bank_baseline_greedy(tiny_clip):
    phrases = ["red apple", "green tree", "oil painting", "by claude monet", "a dog", "red apple", "city at night"]
    bank = PhraseBank(tiny_clip, phrases, batch_size=3, progress=False)
    assert len(bank) == 6, "duplicates are dropped"
    target = tiny_clip.encode_texts(["by claude monet"])
    assert bank.prompt_for(target, max_phrases=1).prompt == "by claude monet", "an exact phrase ranks first"

    images_like = torch.nn.functional.normalize(
        torch.randn(2, target.shape[1], generator=torch.Generator().manual_seed(0))
    )
    result = bank.prompt_for(images_like, max_phrases=3)
    singles = (bank.features @ images_like.T).mean(dim=1)
    assert result.phrases[0] == bank.phrases[int(singles.argmax())]
    assert result.prompt == ", ".join(result.phrases) and 1 <= len(result.phrases) <= 3
    assert len(set(result.phrases)) == len(result.phrases)
    assert result.score >= float(singles.max()) - 1e-6
    recomputed = float((tiny_clip.encode_texts([result.prompt]) @ images_like.T).mean())
    assert result.score == pytest.approx(recomputed, abs=1e-5)


def test_bank_baseline_drops_phrases_beyond_the_context(tiny_clip):
    bank = PhraseBank(tiny_clip, ["word " * 80, "short phrase"], progress=False)
    assert bank.phrases == ["short phrase"]
    with pytest.raises(HardpromptError, match="empty"):
        PhraseBank(tiny_clip, ["  ", ""], progress=False)

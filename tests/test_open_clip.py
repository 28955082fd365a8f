"""The open_clip adapter: features equal open_clip's own, local folders load, names fail in one line."""

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from tiny_open_clip import TEXT_TOWERS, save_tiny_open_clip

from hardprompt import PEZConfig, distill, load_text_encoder
from hardprompt.apps.common import similarity_objective
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.io import load_image

open_clip = pytest.importorskip("open_clip")

TEXTS = ["a photo of a cat", "", "An oil painting of a lighthouse in a storm, dramatic lighting!"]


@pytest.fixture(scope="module")
def open_clip_dirs(tmp_path_factory) -> dict:
    """One saved tiny model per text tower kind (see tiny_open_clip.TEXT_TOWERS)."""
    return {tower: save_tiny_open_clip(tmp_path_factory.mktemp(tower), tower) for tower in TEXT_TOWERS}


def open_clip_features(model, tokenizer, text: str) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer([text])), dim=-1)


@pytest.mark.parametrize("tower", list(TEXT_TOWERS))
def test_features_from_prompt_embeddings_equal_open_clip_encode_text(open_clip_dirs, tower):
    """Causal towers pooled at the end token run n + 2 positions, the others the full context; both match."""
    folder = open_clip_dirs[tower]
    encoder = load_text_encoder(str(folder), device="cpu")
    model = open_clip.create_model(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    assert encoder.short_context == (tower != "bidirectional-last")
    for text in TEXTS:
        ids = encoder.tokenize(text)
        assert ids == tokenizer([text])[0][1 : len(ids) + 1].tolist(), "the same token ids as open_clip's tokenizer"
        expected = open_clip_features(model, tokenizer, text)
        torch.testing.assert_close(encoder.encode_token_ids(ids), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(encoder.encode_texts([text]), expected, atol=1e-5, rtol=0)


def test_a_built_in_architecture_with_random_weights_matches_open_clip():
    """open_clip's own ViT-B-32 config (12 text layers, width 512), random weights, our prompt path."""
    from hardprompt.models.open_clip import OpenCLIPEncoder

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    encoder = OpenCLIPEncoder(model, None, name="ViT-B-32", device=torch.device("cpu"))
    text = "a watercolor of a fox in the snow"
    prompt = encoder.embedding_table[torch.tensor([encoder.tokenize(text)])].requires_grad_(True)
    features = encoder.encode_prompt_embeddings(prompt)
    torch.testing.assert_close(features.detach(), open_clip_features(model, tokenizer, text), atol=1e-5, rtol=0)
    features.sum().backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0


def test_images_are_encoded_by_the_image_tower_and_the_tower_can_be_freed(open_clip_dirs, images):
    folder = open_clip_dirs["causal-argmax"]
    encoder = load_text_encoder(str(folder), device="cpu")
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}")
    pictures = [load_image(path) for path in images]
    with torch.no_grad():
        expected = F.normalize(model.encode_image(torch.stack([preprocess(p) for p in pictures])), dim=-1)
    torch.testing.assert_close(encoder.encode_images(pictures), expected, atol=1e-5, rtol=0)
    text_features = encoder.encode_texts(["a red square"])
    encoder.release_image_tower()
    assert not encoder.supports_images
    with pytest.raises(HardpromptError, match="no image encoder"):
        encoder.encode_images(pictures)
    torch.testing.assert_close(encoder.encode_texts(["a red square"]), text_features)


def test_apps_free_the_image_tower_of_models_they_load_only(open_clip_dirs, images):
    folder = open_clip_dirs["causal-argmax"]
    pictures = [load_image(path) for path in images]
    _, (loaded,) = similarity_objective(str(folder), images=pictures, device="cpu")
    assert not loaded.supports_images, "a model the app loaded keeps no image tower"
    given = load_text_encoder(str(folder), device="cpu")
    similarity_objective(given, images=pictures, device="cpu")
    assert given.supports_images, "an adapter the caller passed in is left as it was"


def test_a_saved_folder_inverts_through_the_cli_and_distills(open_clip_dirs, images, tmp_path, capsys):
    folder = open_clip_dirs["causal-argmax"]
    out = tmp_path / "result.json"
    argv = ["invert", images[0], "--model", folder, "--prompt-len", 4, "--steps", 15, "--device", "cpu"]
    code = main([str(a) for a in [*argv, "--quiet", "--out", out]])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["model"] == str(folder) and len(record["token_ids"]) >= 1 and record["steps"] == 15
    assert capsys.readouterr().out.strip() == record["prompt"]
    config = PEZConfig(prompt_len=4, steps=30, progress=False)
    text = "a red circle on a blue background"
    result = distill(text, model=str(folder), config=config, device="cpu")
    encoder = load_text_encoder(str(folder), device="cpu")
    rescored = float(encoder.encode_texts([result.prompt]) @ encoder.encode_texts([text]).T)
    assert result.steps == 30 and result.score == pytest.approx(rescored, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("open_clip:NoSuchArch/x", "open_clip has no architecture 'NoSuchArch'"),
        ("open_clip:ViT-B-32/no_such_weights", "open_clip has no weights 'no_such_weights' for ViT-B-32"),
        ("open_clip:ViT-B-32", "give open_clip:ARCH/PRETRAINED"),
        ("open_clip:ViT-B-32/laion2b_s34b_b79k", "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
        ("open_clip:hf-hub:nobody/no-such-model", "hf download nobody/no-such-model"),
    ],
)
def test_open_clip_names_fail_in_one_line(name, fragment, capsys):
    code = main(["distill", "a cat", "--model", name, "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("hardprompt: error:") and fragment in err[0], err


def test_without_open_clip_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip now raises ImportError
    with pytest.raises(HardpromptError, match=r"pip install 'hardprompt\[open_clip\]'"):
        load_text_encoder("open_clip:ViT-B-32/openai", device="cpu")

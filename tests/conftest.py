import os
from pathlib import Path

import pytest
from PIL import Image
from tiny_lm import CHAT_TEMPLATE, save_tiny_causal_lm
from tiny_models import save_tiny_clip

os.environ["HF_HUB_OFFLINE"] = "1"  # a test must never download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from hardprompt import load_text_encoder

    return load_text_encoder(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="session")
def chat_lm_dir(tmp_path_factory) -> Path:
    """A tiny random Llama whose tokenizer has a ChatML-like chat template."""
    return save_tiny_causal_lm(tmp_path_factory.mktemp("chat-lm"), "llama", chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion pipeline (diffusers save_pretrained folder), 32×32 images."""
    from tiny_diffusion import save_tiny_stable_diffusion

    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sd(tiny_sd_dir):
    from hardprompt.generation import ImageGenerator

    return ImageGenerator(str(tiny_sd_dir), device="cpu", progress=False)


@pytest.fixture(scope="session")
def minilm():
    from hardprompt import load_text_encoder

    return load_text_encoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> list[Path]:
    """Three small, different RGB images on disk."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, color in enumerate([(220, 30, 30), (30, 200, 40), (20, 40, 210)]):
        path = folder / f"image{i}.png"
        image = Image.new("RGB", (48, 48), color)
        image.paste((255, 255, 255), (8 * i, 8, 8 * i + 16, 24))
        image.save(path)
        paths.append(path)
    return paths

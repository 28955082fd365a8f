"""Text → images with a diffusers pipeline (Stable Diffusion and relatives); diffusers is optional."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from ..errors import HardpromptError
from ..models.resolve import model_location, resolve_device

DEFAULT_PIPELINE = "stabilityai/stable-diffusion-2-1-base"
INSTALL_HINT = "image generation needs diffusers: pip install 'hardprompt[diffusion]' (or pip install diffusers)"


def require_diffusers():
    """The diffusers module, or a one-line HardpromptError telling how to install it."""
    try:
        import diffusers
    except ImportError:
        raise HardpromptError(INSTALL_HINT) from None
    return diffusers


def compose_prompt(prompt: str, template: str | None = None, concat: str | None = None) -> str:
    """The text sent to the generator: `prompt` put into `template` at "{}", then `concat` appended.

    A template such as "a tiger in the style of {}" turns a learned style prompt into a style
    transfer (paper §4.3); `concat` joins two learned prompts into one scene (§4.4).
    """
    if not prompt or not prompt.strip():
        raise HardpromptError("the prompt is empty")
    text = prompt.strip()
    if template is not None:
        if template.count("{}") != 1:
            raise HardpromptError(f'the template must contain "{{}}" exactly once (got {template!r})')
        text = template.replace("{}", text)
    if concat is not None:
        if not concat.strip():
            raise HardpromptError("the prompt to concatenate is empty")
        text = f"{text} {concat.strip()}"
    return text


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one generation call; image i uses seed `seed + i` whatever `n` is."""

    n: int = 4
    steps: int = 25
    guidance: float = 9.0
    seed: int = 0
    size: int | None = None
    """Height and width in pixels (default: the pipeline's own)."""
    negative_prompt: str | None = None
    batch_size: int = 4
    """Images per pipeline call (memory)."""

    def validate(self) -> None:
        """Raise HardpromptError on settings that cannot run."""
        if self.n < 1:
            raise HardpromptError(f"the number of images must be at least 1 (got {self.n})")
        if self.steps < 1:
            raise HardpromptError(f"denoising steps must be at least 1 (got {self.steps})")
        if self.batch_size < 1:
            raise HardpromptError(f"batch size must be at least 1 (got {self.batch_size})")
        if self.size is not None and (self.size < 8 or self.size % 8):
            raise HardpromptError(f"the image size must be a positive multiple of 8 (got {self.size})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TextToImage(Protocol):
    """Anything that turns a prompt into images: `ImageGenerator`, or a procedural renderer of a toy world."""

    name: str

    def generate(self, prompt: str, config: GenerationConfig) -> list[Image.Image]:
        """`config.n` images for `prompt`, reproducible from `config.seed`."""
        ...


class ImageGenerator:
    """A diffusers text-to-image pipeline, loaded once: fp16 on GPU, fp32 on CPU.

    `model` is a hub id or a local directory written by `save_pretrained`.
    """

    def __init__(self, model: str = DEFAULT_PIPELINE, device: str = "auto", progress: bool = True) -> None:
        diffusers = require_diffusers()
        self.name = model
        self.device = resolve_device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        location = model_location(model)
        try:
            pipeline = diffusers.DiffusionPipeline.from_pretrained(location, dtype=self.dtype)
        except (OSError, ValueError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            if Path(location).exists():
                raise HardpromptError(f"{model} is not a diffusers pipeline folder ({first_line})") from None
            raise HardpromptError(
                f"diffusion model {model!r} is not available ({first_line}); download it on a machine with "
                f"internet (`hf download {model} --local-dir DIR`) and pass DIR instead"
            ) from None
        self.pipeline = pipeline.to(self.device)
        self.pipeline.set_progress_bar_config(disable=None if progress else True, leave=False)

    @torch.no_grad()
    def generate(self, prompt: str, config: GenerationConfig = GenerationConfig()) -> list[Image.Image]:
        """`config.n` images for `prompt`; image i is drawn from seed `config.seed + i` (CPU generator).

        The seeds make the result reproducible and independent of `n`, of the batch size and of the device's
        random number generator (the initial noise is drawn on the CPU).
        """
        config.validate()
        images: list[Image.Image] = []
        for start in range(0, config.n, config.batch_size):
            seeds = range(config.seed + start, config.seed + min(config.n, start + config.batch_size))
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
            output = self.pipeline(
                prompt,
                negative_prompt=config.negative_prompt,
                num_images_per_prompt=len(generators),
                num_inference_steps=config.steps,
                guidance_scale=config.guidance,
                height=config.size,
                width=config.size,
                generator=generators,
                output_type="pil",
            )
            images.extend(output.images)
        return images

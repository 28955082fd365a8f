"""open_clip models (OpenCLIP, EVA, DFN, MetaCLIP, ConvNeXt, ...) as text and image encoders.

open_clip is optional (`pip install 'hardprompt[open_clip]'`). Names: `open_clip:ARCH/PRETRAINED`
(`open_clip:ViT-H-14/laion2b_s32b_b79k`), `open_clip:hf-hub:ORG/REPO`, or a local folder in open_clip's
hub layout (`open_clip_config.json` and the weights, safetensors preferred). Models whose text tower
is open_clip's own transformer and whose tokenizer is CLIP's BPE are supported; CoCa (a class token
and a padding mask) and towers from Hugging Face (XLM-R, mT5, SigLIP's tokenizers) are not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import HardpromptError
from .base import TextEncoder
from .clip_bpe import clip_tokenizer
from .frozen import freeze
from .resolve import not_available

INSTALL_HINT = "open_clip models need open_clip: pip install 'hardprompt[open_clip]' (see scripts/install.sh)"
#: open_clip's precision names for our weight dtypes ("pure": every weight in that dtype).
PRECISIONS = {torch.float32: "fp32", torch.float16: "pure_fp16", torch.bfloat16: "pure_bf16"}


def require_open_clip():
    """The open_clip module, or a one-line HardpromptError telling how to install it."""
    try:
        import open_clip
    except ImportError:
        raise HardpromptError(INSTALL_HINT) from None
    return open_clip


class OpenCLIPEncoder(TextEncoder):
    """An open_clip model whose text tower is run on prompt embeddings.

    Where the text tower is causal and pools at the end-of-text token (OpenAI's and OpenCLIP's
    CLIPs), positions after that token never matter, and a prompt of n tokens is encoded as n + 2
    positions (start, prompt, end). Otherwise (a bidirectional tower, or pooling at the first or
    last position) the prompt is laid out as open_clip's tokenizer lays out text: start, prompt,
    end, then padding to the context length.
    """

    def __init__(self, model: nn.Module, preprocess, name: str, device: torch.device) -> None:
        open_clip = require_open_clip()
        text = getattr(model, "text", model)  # CustomTextCLIP keeps its text tower in .text; CLIP holds its parts
        if not isinstance(text, (open_clip.model.CLIP, open_clip.transformer.TextTransformer)):
            raise HardpromptError(f"open_clip model {name!r} has a {type(text).__name__} text tower; not supported")
        if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
            raise HardpromptError(f"open_clip model {name!r} has a class token or a padding mask (CoCa); not supported")
        self.model = freeze(model, device)
        self.text = text
        self.preprocess = preprocess
        self.name = name
        self.device = device
        self.pool_type = getattr(text, "pool_type", None) or model.text_pool_type
        self.eos_pool_id = getattr(text, "eos_id", None) if text is not model else getattr(model, "text_eos_id", None)
        self.context_len = int(text.positional_embedding.shape[0])
        self.tokenizer = clip_tokenizer(open_clip.tokenizer.default_bpe(), self.context_len)
        self.bos_id = int(self.tokenizer.bos_token_id)
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.pad_id = 0  # open_clip's SimpleTokenizer pads with id 0
        pools_at_end = self.pool_type == "argmax" or (self.pool_type == "eos" and self.eos_pool_id == self.eos_id)
        self.short_context = text.attn_mask is not None and pools_at_end

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.text.token_embedding.weight

    @property
    def max_prompt_len(self) -> int:
        return self.context_len - 2

    def _layout(self, prompt_len: int) -> torch.Tensor:
        """Token ids (1, L) of the layout around a prompt: start, prompt (placeholder 1s), end[, padding]."""
        length = prompt_len + 2 if self.short_context else self.context_len
        ids = torch.full((1, length), self.pad_id, dtype=torch.long, device=self.device)
        ids[0, 0], ids[0, 1 : prompt_len + 1], ids[0, prompt_len + 1] = self.bos_id, 1, self.eos_id
        return ids

    def encode_prompt_embeddings(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        batch, prompt_len = prompt_embeds.shape[:2]
        ids = self._layout(prompt_len).expand(batch, -1)
        table = self.embedding_table
        prompt = prompt_embeds.to(table.dtype)
        inputs = torch.cat([table[ids[:, :1]], prompt, table[ids[:, prompt_len + 1 :]]], dim=1)
        length = inputs.shape[1]
        tower = self.text
        hidden = inputs + tower.positional_embedding[:length].to(table.dtype)
        mask = None if tower.attn_mask is None else tower.attn_mask[:length, :length].to(hidden.dtype)
        hidden = tower.ln_final(tower.transformer(hidden, attn_mask=mask))
        pooled = text_global_pool(hidden, ids, self.pool_type, eos_token_id=self.eos_pool_id)
        projection = tower.text_projection
        if isinstance(projection, nn.Linear):
            pooled = projection(pooled)
        elif projection is not None:
            pooled = pooled @ projection
        return F.normalize(pooled.float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [self.tokenize(text)[: self.max_prompt_len] for text in texts]
        return torch.cat([self.encode_token_ids(row) for row in rows])

    def tokenize(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [i for i in ids if i not in (self.bos_id, self.eos_id)]

    @property
    def supports_images(self) -> bool:
        return getattr(self.model, "visual", None) is not None

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not self.supports_images:
            return super().encode_images(images)
        if not images:
            raise HardpromptError("there are no images to encode")
        dtype = next(self.model.visual.parameters()).dtype
        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device, dtype)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    def release_image_tower(self) -> None:
        self.model.visual = None


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """open_clip logs its failures on the root logger; the user gets one HardpromptError line instead."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _check_pretrained_name(open_clip, spec: str) -> str | None:
    """For `ARCH/PRETRAINED`: raise on an unknown architecture or tag; return the weights' hub repo, if any."""
    arch, slash, tag = spec.partition("/")
    if not slash or not arch or not tag:
        raise HardpromptError(
            f"open_clip model {spec!r}: give open_clip:ARCH/PRETRAINED (e.g. open_clip:ViT-H-14/laion2b_s32b_b79k), "
            "open_clip:hf-hub:ORG/REPO, or a local folder"
        )
    if arch not in open_clip.list_models():
        raise HardpromptError(f"open_clip has no architecture {arch!r} (see open_clip.list_models())")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise HardpromptError(f"open_clip has no weights {tag!r} for {arch}; known: {', '.join(tags) or 'none'}")
    return (open_clip.get_pretrained_cfg(arch, tag).get("hf_hub") or "").strip("/") or None


def load_open_clip(name: str, spec: str, device: torch.device, dtype: torch.dtype) -> OpenCLIPEncoder:
    """The open_clip model `spec` (ARCH/PRETRAINED, hf-hub:ORG/REPO or local-dir:PATH) as an adapter called `name`."""
    open_clip = require_open_clip()
    if spec.startswith("hf-hub:"):
        arguments, download = (spec,), spec.removeprefix("hf-hub:")
    elif spec.startswith("local-dir:"):
        arguments, download = (spec,), None
    else:
        download = _check_pretrained_name(open_clip, spec)
        arguments = tuple(spec.split("/", 1))
    with _quiet_logging():
        try:
            model, preprocess = open_clip.create_model_from_pretrained(*arguments, precision=PRECISIONS[dtype])
            tokenizer = open_clip.get_tokenizer(arguments[0])
        except (RuntimeError, OSError, ValueError, KeyError) as error:
            if download is None:
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
                raise HardpromptError(f"{name} is not a loadable open_clip folder ({first_line})") from None
            raise not_available(name, error, download) from None
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
        raise HardpromptError(
            f"open_clip model {name!r} uses a {type(tokenizer).__name__}; only models with CLIP's BPE tokenizer work"
        )
    return OpenCLIPEncoder(model, preprocess, name=name, device=device)

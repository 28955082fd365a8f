"""A tiny random causal LM (Llama or GPT-2 architecture) with a small byte-level BPE tokenizer: nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [
    "the",
    "movie",
    "was",
    "good",
    "bad",
    "great",
    "awful",
    "fun",
    "boring",
    "it",
    "about",
    "sports",
    "politics",
    "business",
    "technology",
    "a",
    "an",
    "and",
    "of",
    "to",
    "in",
    "is",
    "this",
    "that",
    "film",
    "story",
    "actor",
    "plot",
    "music",
    "team",
    "game",
    "market",
    "company",
    "computer",
    "science",
    "world",
    "news",
    "positive",
    "negative",
    "love",
    "hate",
    "best",
    "worst",
    "really",
    "very",
    "not",
    "quite",
    "so",
]


def training_text() -> list[str]:
    """Deterministic sentences over a small word list (the tokenizer's training corpus)."""
    generator = torch.Generator().manual_seed(0)
    sentences = []
    for _ in range(400):
        picks = torch.randint(len(WORDS), (8,), generator=generator).tolist()
        sentences.append(" ".join(WORDS[i] for i in picks) + ".")
    return sentences


CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)
"""ChatML-like, as SmolLM2's: the BOS text opens every turn, and tokenizing adds no BOS."""


def save_tiny_causal_lm(
    folder: Path, architecture: str = "llama", bos: bool = False, seed: int = 0, chat_template: str | None = None
) -> Path:
    """A random causal LM and its tokenizer (with `chat_template`, if given) saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(training_text(), trainer)
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<s>", pad_token="<|endoftext|>"
    )
    wrapped.chat_template = chat_template
    wrapped.save_pretrained(folder)
    torch.manual_seed(seed)
    size = dict(vocab_size=len(wrapped), bos_token_id=1, eos_token_id=0)
    if architecture == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **size))
    else:
        config = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=True,
            **size,
        )
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder

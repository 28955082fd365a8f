"""CLIP's byte-pair vocabulary (49,408 tokens) read from its merges file, as a Hugging Face tokenizer.

OpenAI's CLIP, OpenCLIP and the CLIPs of Stable Diffusion share one BPE vocabulary; open_clip ships
it as `bpe_simple_vocab_16e6.txt.gz`. `clip_tokenizer` builds transformers' `CLIPTokenizer` from that
file with the token ids open_clip's own tokenizer gives, so open_clip models get the tokenizer
interface the vocabulary rules and the round trip need.
"""

from __future__ import annotations

import gzip
from pathlib import Path

MERGES = 49152 - 256 - 2
"""Merges CLIP uses from the file (the rest of the 49,408 ids are 512 byte tokens and two specials)."""


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte → printable character map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def clip_vocabulary(bpe_file: str | Path) -> tuple[dict[str, int], list[str]]:
    """The token → id map and the merges ("a b" strings) of the gzipped BPE file, in CLIP's id order."""
    lines = gzip.decompress(Path(bpe_file).read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : MERGES + 1]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(bpe_file: str | Path, model_max_length: int = 77):
    """transformers' `CLIPTokenizer` over the vocabulary in `bpe_file`."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary(bpe_file)
    pairs = [tuple(merge.split()) for merge in merges]
    return CLIPTokenizer(vocab=vocab, merges=pairs, model_max_length=model_max_length)

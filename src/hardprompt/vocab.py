"""Vocabulary control: which tokens a prompt may use, and the string round trip.

Works from any Hugging Face tokenizer; knows nothing about the model behind it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from .errors import HardpromptError

_UNUSED_SLOT = re.compile(r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>|<\|reserved_special_token_\d+\|>)$")


@dataclass(frozen=True)
class VocabularyRules:
    """What the user allows: blocked substrings, an optional phrase bank, ASCII only."""

    blocklist: tuple[str, ...] = ()
    bank_phrases: tuple[str, ...] | None = None
    ascii_only: bool = False
    words: frozenset[str] | None = None
    """Only tokens that are whole words of this list (`--words-only`; see `Vocabulary.is_whole_word`)."""

    def __post_init__(self) -> None:
        words = tuple(w.strip().lower() for w in self.blocklist if w.strip())
        object.__setattr__(self, "blocklist", words)


class Vocabulary:
    """The allowed token ids of one tokenizer under `VocabularyRules`, and decode/encode.

    Never allowed: special tokens, unused slots, rows of the embedding table beyond the
    tokenizer, and tokens whose text is empty or an incomplete byte sequence.
    """

    def __init__(
        self,
        tokenizer,
        table_size: int,
        tokenize: Callable[[str], list[int]],
        rules: VocabularyRules = VocabularyRules(),
    ) -> None:
        self.tokenizer = tokenizer
        self.rules = rules
        self._tokenize = tokenize
        size = min(table_size, len(tokenizer))
        self._specials = self._special_ids()
        self._word_pattern = re.compile(r"[a-z]+")
        self._word_final_marker = any(token.endswith("</w>") for token in tokenizer.get_vocab())
        self.token_texts: list[str] = tokenizer.batch_decode([[i] for i in range(size)])
        allowed = torch.tensor([self._token_allowed(i, t) for i, t in enumerate(self.token_texts)])
        if rules.bank_phrases is not None:
            allowed &= self._bank_mask(rules.bank_phrases, size)
        self.allowed_ids = allowed.nonzero().flatten()
        if len(self.allowed_ids) == 0:
            raise HardpromptError("the vocabulary rules (blocklist, bank, ascii-only) leave no token to use")
        self._allowed_set = set(self.allowed_ids.tolist())

    def allows(self, token_id: int) -> bool:
        """Whether the rules allow the token `token_id`."""
        return token_id in self._allowed_set

    def _special_ids(self) -> set[int]:
        special = set(self.tokenizer.all_special_ids)
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        special.update(i for i, token in added.items() if getattr(token, "special", False))
        return special

    def _token_allowed(self, token_id: int, text: str) -> bool:
        if token_id in self._specials or not text.strip() or "\ufffd" in text:
            return False
        raw = self.tokenizer.convert_ids_to_tokens(token_id)
        if raw is None or _UNUSED_SLOT.match(raw):
            return False
        if self.rules.ascii_only and not (text.isascii() and text.isprintable()):
            return False
        if self.rules.words is not None and not self.is_whole_word(raw, text):
            return False
        lowered = text.lower()
        return not any(word in lowered for word in self.rules.blocklist)

    def is_whole_word(self, raw: str, text: str) -> bool:
        """Whether a token is a whole word of `rules.words`: its text, stripped and lower-cased, is in the
        list, and it is no piece of a longer word — CLIP's BPE marks word-final tokens with "</w>",
        WordPiece marks continuations with "##"; byte-level BPE pieces that are words count as words."""
        if not self._word_pattern.fullmatch(text.strip().lower()) or text.strip().lower() not in self.rules.words:
            return False
        if self._word_final_marker:
            return raw.endswith("</w>")
        return not raw.startswith("##")

    def _bank_mask(self, phrases: Iterable[str], size: int) -> torch.Tensor:
        mask = torch.zeros(size, dtype=torch.bool)
        phrases = [p for p in phrases if p.strip()]
        if not phrases:
            raise HardpromptError("the bank has no phrases")
        encoded = self.tokenizer(phrases, add_special_tokens=False)["input_ids"]
        ids = torch.tensor(sorted({i for row in encoded for i in row if i < size}), dtype=torch.long)
        mask[ids] = True
        return mask

    def __len__(self) -> int:
        return len(self.allowed_ids)

    def decode(self, token_ids: Sequence[int]) -> str:
        """The string a user would copy for these token ids."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it (no special tokens)."""
        return self._tokenize(text)

    def tokens(self, token_ids: Sequence[int]) -> list[str]:
        """The tokenizer's own spelling of each token."""
        return list(self.tokenizer.convert_ids_to_tokens(list(token_ids)))

    def blocked_words_in(self, text: str) -> list[str]:
        """The blocklist entries that occur in `text` (case-insensitive)."""
        lowered = text.lower()
        return [word for word in self.rules.blocklist if word in lowered]

    def accepts(self, text: str) -> bool:
        """True when `text` has no blocked word and re-tokenizes into allowed tokens only."""
        if self.blocked_words_in(text):
            return False
        return all(self.allows(i) for i in self.encode(text))

    def acceptable_text(self, token_ids: Sequence[int]) -> str:
        """The string a user copies for `token_ids`, repaired (tokens dropped) where it breaks the rules."""
        text = self.decode(token_ids)
        return text if self.accepts(text) else self.decode(self.make_acceptable(token_ids))

    def make_acceptable(self, token_ids: Sequence[int]) -> list[int]:
        """Drop tokens, fewest first, until the decoded text is accepted (at worst: no tokens).

        Blocked words can appear across token boundaries ("re" + "d"), which per-token filtering
        cannot prevent; this is the check after decoding.
        """
        ids = list(token_ids)
        while ids and not self.accepts(self.decode(ids)):
            for position in range(len(ids)):
                shorter = ids[:position] + ids[position + 1 :]
                if self.accepts(self.decode(shorter)):
                    return shorter
            ids = self._drop_worst_token(ids)
        return ids

    def _drop_worst_token(self, ids: list[int]) -> list[int]:
        """Remove the token whose removal leaves the fewest problems in the decoded text."""

        def problems(candidate: list[int]) -> int:
            text = self.decode(candidate)
            outside = sum(not self.allows(i) for i in self.encode(text))
            return len(self.blocked_words_in(text)) + outside

        options = [ids[:p] + ids[p + 1 :] for p in range(len(ids))]
        return min(options, key=problems)

"""A phrase-bank baseline: "CLIP Interrogator without BLIP".

CLIP Interrogator (pharmapsychotic) captions an image with BLIP and then appends phrases from
banks (mediums, artists, movements, flavors) chosen by CLIP similarity to the image, greedily, as
long as each addition raises the similarity. Without the captioner the prompt starts from the
single best phrase instead. The same CLIP as the optimizer ranks the phrases, so the baseline and
PEZ compete on equal terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from ..errors import HardpromptError
from ..models import TextEncoder

SEPARATOR = ", "


@dataclass
class BankPrompt:
    """The baseline's prompt, its phrases, and its mean cosine similarity to the targets."""

    prompt: str
    phrases: list[str]
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


class PhraseBank:
    """Phrases and their text features, encoded once (in batches) for many images."""

    def __init__(
        self, encoder: TextEncoder, phrases: Sequence[str], batch_size: int = 256, progress: bool = True
    ) -> None:
        unique = list(dict.fromkeys(p.strip() for p in phrases if p.strip()))
        if not unique:
            raise HardpromptError("the phrase bank is empty")
        limit = encoder.max_prompt_len
        token_ids = encoder.tokenizer(unique, add_special_tokens=False)["input_ids"]
        self.phrases = [phrase for phrase, ids in zip(unique, token_ids, strict=True) if len(ids) <= limit]
        if not self.phrases:
            raise HardpromptError(f"no phrase of the bank fits the model's context ({limit} tokens)")
        self.encoder = encoder
        chunks = range(0, len(self.phrases), batch_size)
        bar = tqdm(chunks, desc="encoding bank", disable=None if progress else True, leave=False)
        self.features = torch.cat([encoder.encode_texts(self.phrases[i : i + batch_size]) for i in bar])

    def __len__(self) -> int:
        return len(self.phrases)

    @torch.no_grad()
    def prompt_for(self, targets: torch.Tensor, max_phrases: int = 4, shortlist: int = 64) -> BankPrompt:
        """The best phrase for the target features (T, D), extended greedily with `", "`-joined phrases.

        Each round tries every unused phrase of the `shortlist` most similar ones and keeps the
        extension with the highest mean similarity; it stops at `max_phrases`, at the context
        limit, or when no extension improves the similarity.
        """
        if max_phrases < 1:
            raise HardpromptError(f"the baseline needs at least one phrase (got {max_phrases})")
        targets = targets.to(self.features.device)
        similarity = (self.features @ targets.T).mean(dim=1)
        ranked = similarity.topk(min(shortlist, len(self.phrases))).indices.tolist()
        chosen = [self.phrases[ranked[0]]]
        score = float(similarity[ranked[0]])
        while len(chosen) < max_phrases:
            extensions = [
                (phrase, SEPARATOR.join([*chosen, phrase]))
                for phrase in (self.phrases[i] for i in ranked)
                if phrase not in chosen
            ]
            extensions = [e for e in extensions if self.encoder.count_tokens(e[1]) <= self.encoder.max_prompt_len]
            if not extensions:
                break
            scores = (self.encoder.encode_texts([text for _, text in extensions]) @ targets.T).mean(dim=1)
            best = int(scores.argmax())
            if float(scores[best]) <= score:
                break
            score = float(scores[best])
            chosen.append(extensions[best][0])
        return BankPrompt(prompt=SEPARATOR.join(chosen), phrases=chosen, score=score)

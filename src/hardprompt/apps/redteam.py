"""Iterative blocklist red-teaming (paper §6, Figure 10): ban the words a prompt relies on, optimize again.

Round 0 optimizes a prompt for the target (a text, as in `distill`, or an image, as in `invert`)
under the user's blocklist. After each round, every word of the found prompt is removed in turn and
the prompt re-scored; the words whose removal costs the most score join the blocklist, and the next
round optimizes again. A word filter that keeps growing this way never catches the next prompt (the
vocabulary enforces the blocklist, after decoding too), so the scores show how little it costs the
attacker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..bench.report import Panel
from ..errors import HardpromptError
from ..io import atomic_save_image, atomic_write_text, read_lines, write_jsonl
from ..objectives import FeatureSimilarity
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig
from ..optim.result import Result
from ..vocab import VocabularyRules
from .common import BankLike, ImageLike, ModelLike, as_encoder, as_image, describe, is_image_input
from .distill import DEFAULT_TEXT_MODEL, distill
from .invert import invert

_EDGE_PUNCTUATION = re.compile(r"^\W+|\W+$")


@dataclass
class Round:
    """One red-teaming round: the prompt found under the blocklist then in force, and what it banned."""

    round: int
    prompt: str
    score: float
    """Round-trip score of `prompt` against the target."""
    blocklist: list[str]
    """The blocklist in force during this round (the user's words and all earlier rounds' bans)."""
    banned: list[str]
    """Words of `prompt` that join the blocklist after this round, costliest first."""
    word_drops: list[list[Any]]
    """[word, score drop when the word is removed from the prompt] for each word, in prompt order."""
    caught_by_filter: bool
    """Whether the blocklist in force flags the prompt (a substring, case-insensitive): never, by construction."""
    target: str
    model: str
    method: str
    steps: int
    seconds: float
    forward_passes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RedTeamRun:
    """All rounds so far (resumed ones included), and whether Ctrl-C stopped the run early."""

    rounds: list[Round] = field(default_factory=list)
    interrupted: bool = False

    @property
    def final_blocklist(self) -> list[str]:
        """The blocklist after the last round: its words in force plus its bans."""
        return next_blocklist(self.rounds[-1]) if self.rounds else []


def next_blocklist(done: Round) -> list[str]:
    """The blocklist for the round after `done`."""
    return list(dict.fromkeys(done.blocklist + done.banned))


def prompt_words(prompt: str) -> list[str]:
    """The distinct words of `prompt` as a blocklist would hold them: lowercased, without edge punctuation."""
    cleaned = (_EDGE_PUNCTUATION.sub("", word).lower() for word in prompt.split())
    return list(dict.fromkeys(word for word in cleaned if word))


def word_drops(prompt: str, score_text: Callable[[str], float]) -> list[tuple[str, float]]:
    """Each word of `prompt` (see `prompt_words`) with the score lost when the word is removed.

    Removing a word removes every whitespace-separated piece of the prompt that contains it, as
    banning it would: a repeated word ("heart heart") or a longer one ("hearts") cannot cover for it.
    """
    pieces = prompt.split()
    full = score_text(prompt)
    drops = []
    for word in prompt_words(prompt):
        rest = " ".join(piece for piece in pieces if word not in piece.lower())
        drops.append((word, full - score_text(rest)))
    return drops


def words_to_ban(
    drops: Sequence[tuple[str, float]], count: int, blocklist: Sequence[str] = (), min_length: int = 3
) -> list[str]:
    """The `count` words whose removal costs most, among those with a positive drop.

    Words shorter than `min_length` are never banned: a blocklist entry blocks every token that contains
    it, and "a" or "of" would block most of the vocabulary. Words already blocked are skipped.
    """
    blocked = {word.lower() for word in blocklist}
    allowed = [(word, drop) for word, drop in drops if len(word) >= min_length and word not in blocked and drop > 0]
    return [word for word, _ in sorted(allowed, key=lambda item: -item[1])[:count]]


def describe_target(target: ImageLike) -> str:
    """The target as the round records name it: the text, or the image's path."""
    described = describe(target)
    return described if isinstance(described, str) else str(described)


def redteam(
    target: ImageLike,
    model: ModelLike = DEFAULT_TEXT_MODEL,
    config: MethodConfig | None = None,
    *,
    rounds: int = 4,
    ban_per_round: int = 2,
    min_word_length: int = 3,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    previous: Sequence[Round] = (),
    on_round: Callable[[list[Round]], None] | None = None,
    device: str = "auto",
    dtype: str = "float32",
) -> RedTeamRun:
    """Optimize, ban the prompt's costliest `ban_per_round` words, and optimize again, until `rounds` rounds exist.

    `target` is a text (optimized as in `distill`) or an image or image file (as in `invert`).
    `previous` are rounds of an earlier run on the same target and model, which this one continues;
    `on_round` is called with all rounds after each new one (to save them). A round that bans nothing
    (no word of its prompt carries score) ends the run: the next would meet the same blocklist.
    Ctrl-C stops the run and keeps the finished rounds; the round it interrupted is dropped.
    """
    config = config or PEZConfig()
    if rounds < 1:
        raise HardpromptError(f"rounds must be at least 1 (got {rounds})")
    if ban_per_round < 1:
        raise HardpromptError(f"ban-per-round must be at least 1 (got {ban_per_round})")
    if min_word_length < 1:
        raise HardpromptError(f"min-word-length must be at least 1 (got {min_word_length})")
    image = is_image_input(target)
    if not image and not str(target).strip():
        raise HardpromptError("the target text is empty")
    target_value = as_image(target) if image else str(target)
    encoder = as_encoder(model, device, dtype)
    if image and not encoder.supports_images:
        raise HardpromptError(f"model {encoder.name} has no image encoder; use a CLIP model or 'shapes'")
    name = describe_target(target)
    for done in previous:
        if (done.target, done.model) != (name, encoder.name):
            raise HardpromptError(
                f"the rounds to resume are for target {done.target!r} on {done.model}, "
                f"not {name!r} on {encoder.name}; use another --out"
            )
    features = encoder.encode_images([target_value]) if image else encoder.encode_texts([target_value])
    scorer = FeatureSimilarity(encoder, features)

    def score_text(text: str) -> float:
        return scorer.score_token_ids(encoder.tokenize(text))

    def optimize(words: list[str]) -> Result:
        options = {"model": encoder, "config": config, "blocklist": words, "bank": bank, "ascii_only": ascii_only}
        return invert([target_value], **options) if image else distill(target_value, **options)

    run = RedTeamRun(rounds=list(previous))
    user_words = list(VocabularyRules(blocklist=tuple(blocklist)).blocklist)
    in_force = list(dict.fromkeys(next_blocklist(run.rounds[-1]) + user_words)) if run.rounds else user_words
    try:
        while len(run.rounds) < rounds and (not run.rounds or run.rounds[-1].banned):
            result = optimize(in_force)
            if result.interrupted:
                run.interrupted = True
                break
            drops = word_drops(result.prompt, score_text)
            done = Round(
                round=len(run.rounds),
                prompt=result.prompt,
                score=result.score,
                blocklist=in_force,
                banned=words_to_ban(drops, ban_per_round, in_force, min_word_length),
                word_drops=[[word, round(drop, 6)] for word, drop in drops],
                caught_by_filter=any(word in result.prompt.lower() for word in in_force),
                target=name,
                model=encoder.name,
                method=result.method,
                steps=result.steps,
                seconds=result.seconds,
                forward_passes=result.forward_passes,
            )
            run.rounds.append(done)
            if on_round is not None:
                on_round(run.rounds)
            in_force = next_blocklist(done)
    except KeyboardInterrupt:
        run.interrupted = True
    return run


def load_rounds(path: str | Path) -> list[Round]:
    """The rounds of a JSONL file written by `save_rounds` (to resume a run)."""
    rounds = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            rounds.append(Round(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise HardpromptError(f"{path}:{number}: not a round written by hardprompt redteam ({error})") from None
    if [done.round for done in rounds] != list(range(len(rounds))):
        raise HardpromptError(f"{path}: the rounds are not numbered 0, 1, 2, ...")
    return rounds


def save_rounds(rounds: Sequence[Round], out: str | Path, plot: str | Path, final_blocklist: str | Path) -> None:
    """Write the rounds (JSONL), the plot of score per round (PNG) and the final blocklist (one word a line), whole."""
    write_jsonl(out, [done.to_dict() for done in rounds])
    atomic_save_image(plot, plot_rounds(rounds))
    words = next_blocklist(rounds[-1]) if rounds else []
    atomic_write_text(final_blocklist, "".join(word + "\n" for word in words))


def plot_rounds(rounds: Sequence[Round], width: int = 560, height: int = 360) -> Image.Image:
    """Round-trip score per round, each point labelled with the words banned after it."""
    font = ImageFont.load_default()
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    scores = [done.score for done in rounds]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    margin = max(0.1 * (high - low), 0.02)
    panel = Panel(56, 28, width - 24, height - 40, max(len(rounds) - 1, 1), low - margin, high + margin)
    draw.rectangle([panel.x0, panel.y0, panel.x1, panel.y1], outline="black")
    target = rounds[0].target if rounds else ""
    draw.text((panel.x0, 8), f"round-trip score per round, blocklist growing: {target[:48]}", fill="black", font=font)
    for tick in range(5):
        value = panel.low + (panel.high - panel.low) * tick / 4
        y = panel.to_xy(0, value)[1]
        draw.line([panel.x0 - 4, y, panel.x0, y], fill="black")
        draw.text((panel.x0 - 50, y - 6), f"{value:.3f}", fill="black", font=font)
    points = [panel.to_xy(done.round, done.score) for done in rounds]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    for done, (x, y) in zip(rounds, points, strict=True):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(31, 119, 180))
        draw.line([x, panel.y1, x, panel.y1 + 4], fill="black")
        draw.text((x - 4, panel.y1 + 8), str(done.round), fill="black", font=font)
        label = ("-" + ",".join(done.banned)) if done.banned else ""
        draw.text((min(x + 5, panel.x1 - 6 * len(label)), y - 14), label[:40], fill=(90, 90, 90), font=font)
    draw.text((panel.x1 - 40, panel.y1 + 22), "round", fill="black", font=font)
    return image

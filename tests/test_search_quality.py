"""The hybrid method, --words-only with readability, and --patience."""

import pytest
import torch
from PIL import Image

import hardprompt
from hardprompt.apps.common import build_vocabulary, similarity_objective
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.objectives import FeatureSimilarity
from hardprompt.objectives.base import target_token_ids
from hardprompt.optim import HybridConfig, PEZConfig, build_config, hybrid, pez
from hardprompt.optim.hybrid import pick_target_tokens
from hardprompt.optim.registry import METHODS
from hardprompt.optim.search import SearchConfig
from hardprompt.words import english_words, readability

pytestmark = pytest.mark.skipif(english_words() is None, reason="no English word list (apt-get install wamerican)")

TEXT = "a watercolor painting of a red fox asleep in the snow"


def test_readability_is_the_share_of_known_words():
    assert readability("a red fox") == 1.0
    assert readability("red carriagesonisantly") == 0.5
    assert readability("") == 0.0
    assert "b" not in english_words() and "a" in english_words()


@pytest.mark.parametrize("method", ["pez", "hybrid", "gcg"])
def test_words_only_prompts_are_whole_words_after_decoding(tiny_clip, method):
    vocab = build_vocabulary(tiny_clip, blocklist=["fox"], words_only=True)
    for token in vocab.tokens(vocab.allowed_ids[:: max(1, len(vocab) // 500)].tolist()):
        assert token.endswith("</w>") and token[:-4].lower() in english_words()
    config = build_config(method, prompt_len=5, steps=12, search_width=16, progress=False) if method != "pez" else None
    config = config or PEZConfig(prompt_len=5, steps=12, progress=False)
    result = hardprompt.distill(TEXT, model=tiny_clip, config=config, blocklist=["fox"], words_only=True)
    assert result.readability == 1.0, result.prompt
    assert "fox" not in result.prompt.lower()
    assert result.config["words_only"] is True


def test_every_result_has_readability(tiny_clip):
    for name in METHODS:
        config = build_config(name, prompt_len=3, steps=2, progress=False)
        result = hardprompt.distill(TEXT, model=tiny_clip, config=config)
        assert result.readability == readability(result.prompt), name


def test_words_only_on_wordpiece_keeps_no_continuation(minilm):
    vocab = build_vocabulary(minilm, words_only=True)
    tokens = vocab.tokens(vocab.allowed_ids.tolist())
    assert not any(token.startswith("##") for token in tokens)
    assert {"lighthouse", "painting"} <= set(tokens)
    assert all(token.lower() in english_words() for token in tokens)


def test_hybrid_respects_bank_ascii_and_budgets(tiny_clip):
    bank = ["a red fox in the snow", "watercolor painting of a cabin"]
    allowed_words = {word for phrase in bank for word in phrase.split()}
    config = HybridConfig(prompt_len=4, steps=10, search_width=8, progress=False)
    result = hardprompt.distill(TEXT, model=tiny_clip, config=config, bank=bank, ascii_only=True)
    assert set(result.prompt.split()) <= allowed_words and result.prompt.isascii()
    assert result.method == "hybrid" and result.steps <= 10 and len(result.history) == result.steps
    limited = hardprompt.distill(
        TEXT, model=tiny_clip, config=HybridConfig(prompt_len=4, steps=1000, max_forward_passes=60, progress=False)
    )
    assert limited.forward_passes <= 60 + 2 * config.candidates  # + the two phases' round-trip checks
    timed = hardprompt.distill(
        TEXT, model=tiny_clip, config=HybridConfig(prompt_len=4, steps=100000, max_seconds=1.5, progress=False)
    )
    assert timed.seconds < 1.5 + 1.0


def test_hybrid_is_deterministic_and_polishes_pez(tiny_clip):
    def run(seed, **options):
        config = HybridConfig(prompt_len=4, steps=40, search_width=16, seed=seed, progress=False, **options)
        return hardprompt.distill(TEXT, model=tiny_clip, config=config)

    first, again, other = run(0), run(0), run(1)
    assert first.token_ids == again.token_ids and first.history == again.history
    assert first.history != other.history
    unpicked = run(0, pick=False, scan_tokens=0)
    explored = hardprompt.distill(TEXT, model=tiny_clip, config=PEZConfig(prompt_len=4, steps=30, progress=False))
    assert unpicked.history[:30] == explored.history  # no start: PEZ takes the default 0.75 of 40 steps
    assert unpicked.score >= explored.score - 1e-6  # GCG starts from PEZ's best string and keeps the better


def pick(encoder, text, prompt_len, **rules):
    vocab = build_vocabulary(encoder, **rules)
    objective = FeatureSimilarity(encoder, encoder.encode_texts([text]), target_token_ids=encoder.tokenize(text))
    return objective, vocab, pick_target_tokens(objective, vocab, SearchConfig(prompt_len=prompt_len, progress=False))


def is_in_order(part, whole):
    rest = iter(whole)
    return all(token in rest for token in part)


def test_the_pick_grows_the_target_words_greedily_in_order(minilm):
    text = "highly detailed oil painting of an old stone lighthouse on a rocky cliff above stormy seas"
    objective, _, one = pick(minilm, text, 1)
    words = minilm.tokenize(text)
    assert len(set(words)) == len(words)  # no repeated token: every option of a round is distinct
    singles = [objective.score_token_ids([token]) for token in words]
    assert one.token_ids == [words[max(range(len(words)), key=singles.__getitem__)]]
    _, _, eight = pick(minilm, text, 8)
    assert len(eight.token_ids) == 8 and is_in_order(eight.token_ids, words)
    assert eight.forward_passes == sum(len(words) - r for r in range(8)) + 1 + 1  # rounds, padded row, round trip
    assert eight.score > 0.8 and eight.score > one.score


def test_the_pick_keeps_the_vocabulary_rules_and_pads_a_short_text(minilm):
    _, vocab, blocked = pick(minilm, "a red fox asleep in the snow", 4, blocklist=["fox"])
    assert "fox" not in blocked.prompt and set(blocked.token_ids) <= set(vocab.allowed_ids.tolist())
    objective, _, repeated = pick(minilm, "red red red fox", 2)  # options spelling one prompt are scored once
    red, fox = minilm.tokenize("red fox")
    fox_first = objective.score_token_ids([fox]) > objective.score_token_ids([red])
    # round 1: "red", "fox"; round 2 after "fox": "red fox" (3 ways); after "red": "red red", "red fox"
    assert repeated.forward_passes == 2 + (1 if fox_first else 2) + 1 + 1  # + padded row + round trip
    _, _, short = pick(minilm, "red fox", 5)
    assert len(short.token_ids) == 5 and short.token_ids[:2] == minilm.tokenize("red fox")


def test_hybrid_starts_from_the_pick_on_text_targets(minilm):
    text = "a cozy wooden cabin in a snowy pine forest at night, smoke rising from the chimney"
    _, _, picked = pick(minilm, text, 6)
    config = HybridConfig(prompt_len=6, steps=8, search_width=16, progress=False)
    result = hardprompt.distill(text, model=minilm, config=config)
    assert result.score >= picked.score - 1e-6
    assert result.steps == 8 and len(result.history) == 8  # 1 pick step + 7 GCG steps, no PEZ after a pick
    assert result.history[0] == pytest.approx(picked.projected_score)
    limited = hardprompt.distill(
        text, model=minilm, config=HybridConfig(prompt_len=6, steps=1000, max_forward_passes=40, progress=False)
    )
    assert limited.forward_passes <= 40 + 1 + limited.config["candidates"]  # + the phases' round-trip checks


def test_an_image_target_has_no_words_to_pick(tiny_clip):
    red_image = Image.new("RGB", (32, 32), (220, 30, 30))
    objective, _ = similarity_objective(tiny_clip, images=[red_image])
    assert target_token_ids(objective) == ()
    config = HybridConfig(prompt_len=3, steps=8, search_width=8, scan_tokens=0, progress=False)
    explored = hardprompt.invert([red_image], model=tiny_clip, config=PEZConfig(prompt_len=3, steps=6, progress=False))
    result = hardprompt.invert([red_image], model=tiny_clip, config=config)
    assert result.history[:6] == explored.history  # without a scan (tests/test_scan.py): PEZ first, then GCG


def test_hybrid_rejects_a_bad_split(tiny_clip):
    for explore in (1.0, -0.1):
        with pytest.raises(HardpromptError, match="explore"):
            HybridConfig(explore=explore).validate()
    HybridConfig(explore=0.0).validate()  # GCG only (after a pick, or from random tokens)


class InterruptedAt:
    """An objective that raises KeyboardInterrupt (a Ctrl-C) at its `at`-th evaluation."""

    def __init__(self, inner, at):
        self.inner, self.at, self.calls = inner, at, 0
        self.embedding_table = inner.embedding_table
        self.target_token_ids = inner.target_token_ids

    def new_step(self):
        self.inner.new_step()

    def evaluate(self, prompt_embeds):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner.evaluate(prompt_embeds)

    def score_token_ids(self, token_ids):
        return self.inner.score_token_ids(token_ids)


def test_hybrid_keeps_the_pick_when_interrupted_before_gcg_records_and_keeps_the_step_budget(minilm):
    text = "red fox cabin"
    objective, vocab, picked = pick(minilm, text, 2)
    config = HybridConfig(prompt_len=2, steps=50, search_width=8, progress=False)
    # the pick evaluates 3 times (2 rounds, the padded prompt); the 4th call is GCG's first step
    result = hybrid.run(InterruptedAt(objective, at=4), vocab, config)
    assert result.interrupted and result.method == "hybrid" and result.token_ids == picked.token_ids
    for steps in (1, 2, 3):
        for options in ({}, {"pick": False}):
            budgeted = hybrid.run(objective, vocab, HybridConfig(prompt_len=2, steps=steps, progress=False, **options))
            assert budgeted.steps == steps == len(budgeted.history), (steps, options)


class Converged:
    """A toy objective whose score never changes: patience must stop it."""

    def __init__(self, inner):
        self.inner = inner
        self.embedding_table = inner.embedding_table

    def new_step(self):
        pass

    def evaluate(self, prompt_embeds):
        evaluation = self.inner.evaluate(prompt_embeds)
        return type(evaluation)(
            loss=evaluation.loss * 0 + prompt_embeds.sum() * 0, score=torch.zeros(len(prompt_embeds))
        )

    def score_token_ids(self, token_ids):
        return 0.0


def test_patience_stops_a_converged_search_early(tiny_clip):
    vocab = build_vocabulary(tiny_clip)
    objective = Converged(FeatureSimilarity(tiny_clip, tiny_clip.encode_texts([TEXT])))
    result = pez.run(objective, vocab, PEZConfig(prompt_len=3, steps=500, patience=5, progress=False))
    assert result.stopped_early and result.steps == 6
    improving = pez.run(
        FeatureSimilarity(tiny_clip, tiny_clip.encode_texts([TEXT])),
        vocab,
        PEZConfig(prompt_len=3, steps=30, patience=1000, progress=False),
    )
    assert not improving.stopped_early and improving.steps == 30


def test_patience_and_words_only_on_the_command_line(tiny_clip_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["distill", TEXT, "--model", str(tiny_clip_dir), "--prompt-len", "3", "--out", str(out)]
    assert main([*argv, "--steps", "50", "--patience", "0"]) == 2
    assert "patience" in capsys.readouterr().err
    assert main([*argv, "--steps", "20", "--method", "hybrid", "--words-only", "--patience", "50"]) == 0
    assert out.exists()

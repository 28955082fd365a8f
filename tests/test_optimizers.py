"""Every optimizer of the registry on the tiny CLIP: it improves, respects the vocabulary, honours budgets."""

from __future__ import annotations

import json

import pytest
import torch

from hardprompt.apps.common import build_vocabulary
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.objectives import Evaluation, FeatureSimilarity
from hardprompt.optim.pez import random_allowed_ids
from hardprompt.optim.registry import METHODS, build_config, run_method
from hardprompt.optim.search import round_trips

# Candidate batches sized for a test: every run below takes well under a second.
SMALL = {"gcg": {"top_k": 32, "search_width": 32}, "autoprompt": {"top_k": 16}, "random": {"search_width": 16}}
TARGET = "a red bird sitting on a branch"


def config(name: str, **options):
    return build_config(name, prompt_len=4, progress=False, **{**SMALL.get(name, {}), **options})


class CountingObjective:
    """Wraps an objective and counts every prompt row it evaluates (the honest forward-pass count)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.rows = 0

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.inner.embedding_table

    def new_step(self) -> None:
        self.inner.new_step()

    def evaluate(self, prompt_embeds):
        self.rows += len(prompt_embeds)
        return self.inner.evaluate(prompt_embeds)

    def score_token_ids(self, token_ids) -> float:
        self.rows += 1
        return self.inner.score_token_ids(token_ids)


@pytest.fixture(scope="module")
def objective(tiny_clip):
    return FeatureSimilarity(tiny_clip, tiny_clip.encode_texts([TARGET]))


@pytest.fixture(scope="module")
def vocab(tiny_clip):
    return build_vocabulary(tiny_clip)


@pytest.mark.parametrize("name", list(METHODS))
def test_method_improves_on_its_initial_prompt(name, objective, vocab):
    initial = objective.score_token_ids(random_allowed_ids(vocab.allowed_ids, (4,), 0).tolist())
    result = run_method(objective, vocab, config(name, steps=40))
    assert result.method == name
    assert result.hard == (name != "soft")
    assert result.steps == 40
    assert result.score > initial + 0.3, (initial, result.score)
    assert result.history == sorted(result.history)  # best-so-far never goes down
    assert len(result.history_seconds) == result.steps
    assert vocab.accepts(result.prompt)
    if result.hard:
        assert result.score == pytest.approx(objective.score_token_ids(vocab.encode(result.prompt)), abs=1e-5)
    else:  # the soft score is the continuous prompt's; its decode's round-trip score is lower
        assert result.projected_score == pytest.approx(objective.score_token_ids(vocab.encode(result.prompt)), abs=1e-5)
        assert result.score > result.projected_score


BANK = ["a red dog", "a blue cat", "green trees", "sunny day at the beach"]


@pytest.fixture(scope="module")
def bank_vocab(tiny_clip):
    return build_vocabulary(tiny_clip, blocklist=["red"], bank=BANK)


@pytest.mark.parametrize("name", list(METHODS))
def test_method_respects_bank_and_blocklist(name, tiny_clip, objective, bank_vocab):
    vocab = bank_vocab
    allowed = set(vocab.allowed_ids.tolist())
    specials = set(tiny_clip.tokenizer.all_special_ids)
    result = run_method(objective, vocab, config(name, steps=10))
    assert set(result.token_ids) <= allowed
    assert not set(result.token_ids) & specials
    assert "red" not in result.prompt.lower()
    assert set(result.prompt.split()) <= set(" ".join(BANK).split()) - {"red"}


@pytest.mark.parametrize("name", list(METHODS))
def test_forward_passes_are_counted_and_bounded(name, objective, vocab):
    counting = CountingObjective(objective)
    result = run_method(counting, vocab, config(name, steps=1000, max_forward_passes=60))
    assert result.forward_passes == counting.rows  # candidates and round-trip checks included
    assert result.steps < 1000
    # The search spends exactly its budget; the final round trip scores at most `candidates` (8) prompts.
    assert 60 < result.forward_passes <= 60 + 8


@pytest.mark.parametrize("name", list(METHODS))
def test_wall_clock_budget(name, objective, vocab):
    result = run_method(objective, vocab, config(name, steps=10**6, max_seconds=0.5))
    assert 0 < result.steps < 10**6
    assert result.seconds < 2.0


def test_retokenization_filter(vocab):
    whole = vocab.encode("a red dog")
    hel, lo = vocab.tokenizer.convert_tokens_to_ids(["hel", "lo</w>"])
    assert vocab.encode(vocab.decode([hel, lo])) != [hel, lo]  # "hello" is one token
    candidates = torch.tensor([whole, [*whole[:1], hel, lo]])
    assert round_trips(vocab, candidates).tolist() == [True, False]


def test_gcg_keeps_only_round_tripping_prompts(objective, vocab):
    result = run_method(objective, vocab, config("gcg", steps=15))
    assert vocab.encode(vocab.decode(result.token_ids)) == result.token_ids


class FluencyObjective(CountingObjective):
    """A flat task loss (score kept) and a 'fluency' that prefers one token everywhere: the distance to it."""

    def __init__(self, inner, preferred: int) -> None:
        super().__init__(inner)
        self.preferred = inner.embedding_table[preferred].detach()

    def evaluate(self, prompt_embeds):
        evaluation = super().evaluate(prompt_embeds)
        return Evaluation(loss=evaluation.loss * 0, score=evaluation.score)

    def fluency_loss(self, prompt_embeds):
        self.rows += len(prompt_embeds)
        self.last = prompt_embeds.detach().clone()
        return ((prompt_embeds - self.preferred) ** 2).sum(dim=-1).mean(dim=-1)


def test_fluentprompt_uses_the_fluency_term_when_the_objective_has_one(objective, vocab):
    preferred = vocab.encode("bird")[0]
    fluent = FluencyObjective(objective, preferred)
    # lr · weight · d(fluency)/de = 1.0 · 2.0 · 2 (e − preferred) / 4 positions: one step lands on `preferred`.
    result = run_method(fluent, vocab, config("fluentprompt", steps=30, fluency_weight=2.0, lr=1.0))
    assert result.config["fluency_term"] is True
    assert result.forward_passes == fluent.rows
    assert torch.allclose(fluent.last, fluent.preferred.expand_as(fluent.last))  # the search ends on it
    plain = run_method(objective, vocab, config("fluentprompt", steps=30, lr=1.0))
    assert plain.config["fluency_term"] is False


def test_methods_are_deterministic_with_a_seed(objective, vocab):
    for name in ("gcg", "fluentprompt", "random"):
        first = run_method(objective, vocab, config(name, steps=8, seed=3))
        again = run_method(objective, vocab, config(name, steps=8, seed=3))
        assert (first.token_ids, first.history) == (again.token_ids, again.history)


def test_build_config_rejects_settings_a_method_does_not_have():
    with pytest.raises(HardpromptError, match="gcg has no setting --lr"):
        build_config("gcg", lr=0.1)
    with pytest.raises(HardpromptError, match="unknown method"):
        build_config("nope")
    assert build_config("pez", steps=None).steps == 3000  # unset means the method's default


def test_cli_method_option(tiny_clip_dir, images, tmp_path, capsys):
    out = tmp_path / "result.json"
    options = ["--prompt-len", "3", "--search-width", "8", "--top-k", "8", "--quiet", "--out", str(out)]
    code = main(["invert", str(images[0]), "--model", str(tiny_clip_dir), "--method", "gcg", "--steps", "3", *options])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["method"] == "gcg" and record["steps"] == 3 and record["hard"] is True
    assert record["forward_passes"] >= 3 and record["config"]["search_width"] == 8
    capsys.readouterr()
    code = main(["invert", str(images[0]), "--model", str(tiny_clip_dir), "--method", "gcg", "--lr", "1"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "hardprompt: error: method gcg has no setting --lr"


def test_cli_soft_says_it_is_not_a_hard_prompt(tiny_clip_dir, images, capsys):
    code = main(["invert", str(images[0]), "--model", str(tiny_clip_dir), "--method", "soft", "--steps", "3"])
    assert code == 0
    assert "NOT a hard prompt" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["pez", "soft", "autoprompt-sgd", "fluentprompt"])
def test_restarts_are_one_batch_per_step(name, objective, vocab):
    counting = CountingObjective(objective)
    result = run_method(counting, vocab, config(name, steps=5, restarts=3))
    assert result.forward_passes == counting.rows
    assert 3 * 5 < result.forward_passes <= 3 * 5 + 8  # three rows per step, then the round trip

"""The token scan (`optim.scan`) and the hybrid's start from it on image targets."""

import time
from dataclasses import replace

import pytest
import torch
from PIL import Image

import hardprompt
from hardprompt import load_text_encoder
from hardprompt.apps.common import build_vocabulary, similarity_objective
from hardprompt.errors import HardpromptError
from hardprompt.objectives import FeatureSimilarity
from hardprompt.objectives.base import token_scan
from hardprompt.optim import HybridConfig, PEZConfig, hybrid, scan
from hardprompt.optim.hybrid import scan_start
from hardprompt.optim.search import SearchConfig, make_tracker, round_trips
from hardprompt.shapes import render
from hardprompt.shapes.evaluation import evaluation_scenes

BANK = ["a red fox asleep in the snow", "a watercolor painting of a wooden cabin", "bright orange sunset sky"]


def never() -> bool:
    return False


def tracker_for(vocab, objective):
    return make_tracker(vocab, SearchConfig(steps=1, progress=False), "test", [objective])


@pytest.fixture(scope="module")
def fox(minilm):
    """A text's features as the only target, without its tokens (as an image would be), on a bank vocabulary."""
    vocab = build_vocabulary(minilm, bank=BANK)
    return FeatureSimilarity(minilm, minilm.encode_texts(["a red fox sleeping in snow"])), vocab


def single_scores(objective, tokens):
    return [objective.score_token_ids([token]) for token in tokens]


def test_a_small_vocabulary_is_ranked_exactly(fox):
    objective, vocab = fox
    allowed = vocab.allowed_ids.tolist()
    tracker = tracker_for(vocab, objective)
    ranked = scan.rank_tokens(objective, vocab, tracker, never, tokens=5, sample=len(allowed), chunk=7, seed=0)
    scores = single_scores(objective, allowed)
    expected = sorted(allowed, key=lambda token: -scores[allowed.index(token)])[:5]
    assert ranked.tolist() == expected and tracker.forward_passes == len(allowed)
    assert "fox" in vocab.tokens(ranked.tolist())


def test_the_fitted_ranking_finds_a_scenes_words():
    shapes = load_text_encoder("shapes", device="cpu")
    vocab = build_vocabulary(shapes)
    scene = evaluation_scenes(1)[0]  # a small orange heart at the top, pixelated style, on a green background
    objective = FeatureSimilarity(shapes, shapes.encode_images([render(scene)]))
    assert token_scan(objective) and len(vocab.allowed_ids) > 2 * 1000
    tracker = tracker_for(vocab, objective)
    ranked = scan.rank_tokens(objective, vocab, tracker, never, tokens=20, sample=1000, chunk=256, seed=0)
    assert tracker.forward_passes == 2000  # the random sample and the fit's best, each scored once
    assert {"orange", "heart", "green"} <= set(vocab.tokens(ranked.tolist()))
    scores = single_scores(objective, ranked.tolist())
    assert scores == sorted(scores, reverse=True)
    again = scan.rank_tokens(objective, vocab, tracker_for(vocab, objective), never, 20, 1000, 256, seed=0)
    assert again.tolist() == ranked.tolist()


def test_the_build_appends_the_best_candidate_each_round(fox):
    objective, vocab = fox
    candidates = vocab.allowed_ids[:6]
    built = scan.build(objective, candidates, 3, tracker_for(vocab, objective), never, chunk=4)
    prompt = []
    for _ in range(3):
        options = [[*prompt, token] for token in candidates.tolist() if token not in prompt]
        prompt = max(options, key=objective.score_token_ids)
    assert built == prompt


def test_the_sweep_ends_where_no_single_swap_scores_higher(fox):
    objective, vocab = fox
    candidates = vocab.allowed_ids[:10]
    start = vocab.allowed_ids[-3:].clone()
    start_score = objective.score_token_ids(start.tolist())
    generator = torch.Generator().manual_seed(0)
    tracker = tracker_for(vocab, objective)
    prompt, score = scan.sweep(objective, vocab, start, start_score, candidates, tracker, never, 4, generator)
    assert score >= start_score and score == pytest.approx(objective.score_token_ids(prompt.tolist()), abs=1e-5)
    for position in range(len(prompt)):
        rows = prompt.unsqueeze(0).repeat(len(candidates), 1)
        rows[:, position] = candidates
        rows = rows[round_trips(vocab, rows)]
        assert max(objective.score_token_ids(row) for row in rows.tolist()) <= score + 1e-5


RED = Image.new("RGB", (32, 32), (220, 30, 30))


def test_hybrid_starts_an_image_target_from_a_scan(tiny_clip):
    objective, _ = similarity_objective(tiny_clip, images=[RED])
    vocab = build_vocabulary(tiny_clip)
    scanned = scan_start(objective, vocab, SearchConfig(prompt_len=3, progress=False), tokens=16, sample=300)
    config = HybridConfig(prompt_len=3, steps=6, search_width=8, scan_tokens=16, scan_sample=300, progress=False)
    result = hardprompt.invert([RED], model=tiny_clip, config=config)
    assert result.steps == 6 == len(result.history)  # the scan's step, then 5 GCG steps (no PEZ after a start)
    assert result.history[0] == pytest.approx(scanned.projected_score)
    assert result.score >= scanned.score - 1e-6
    again = hardprompt.invert([RED], model=tiny_clip, config=config)
    assert again.token_ids == result.token_ids and again.history == result.history
    unscanned = hardprompt.invert([RED], model=tiny_clip, config=replace(config, scan_tokens=0))
    explored = hardprompt.invert([RED], model=tiny_clip, config=PEZConfig(prompt_len=3, steps=4, progress=False))
    assert unscanned.history[:4] == explored.history  # no scan: PEZ for 0.75 of the steps, as before


def spy_on(monkeypatch, module, calls):
    """Record the config of each call of `module.run` (run as before) in `calls`."""
    real = module.run

    def spy(objective, vocab, config):
        calls.append(config)
        return real(objective, vocab, config)

    monkeypatch.setattr(module, "run", spy)


def test_gcg_after_a_scan_draws_its_swaps_from_scan_top_k(tiny_clip, monkeypatch):
    calls = []
    spy_on(monkeypatch, hybrid.gcg, calls)
    config = HybridConfig(
        prompt_len=3, steps=3, search_width=8, scan_tokens=16, scan_sample=300, scan_top_k=5, progress=False
    )
    hardprompt.invert([RED], model=tiny_clip, config=config)
    hardprompt.invert([RED], model=tiny_clip, config=replace(config, scan_tokens=0))
    assert [call.top_k for call in calls] == [5, 256]  # after a scan scan_top_k, else top_k
    with pytest.raises(HardpromptError, match="scan top-k"):
        HybridConfig(scan_top_k=0).validate()
    for share in (0.0, 1.5):
        with pytest.raises(HardpromptError, match="scan share"):
            HybridConfig(scan_share=share).validate()


def test_the_scan_keeps_the_vocabulary_rules_and_every_budget(tiny_clip):
    options = dict(prompt_len=3, search_width=8, scan_tokens=16, scan_sample=300, progress=False)
    blocked = hardprompt.invert(
        [RED], model=tiny_clip, config=HybridConfig(steps=4, **options), blocklist=["red"], ascii_only=True
    )
    assert "red" not in blocked.prompt.lower() and blocked.prompt.isascii()
    for steps in (1, 2, 3):
        budgeted = hardprompt.invert([RED], model=tiny_clip, config=HybridConfig(steps=steps, **options))
        assert budgeted.steps == steps == len(budgeted.history)
    objective, _ = similarity_objective(tiny_clip, images=[RED])
    vocab = build_vocabulary(tiny_clip)
    passes = 2 * scan.scan_rows(len(vocab.allowed_ids), 300, 16, 3) + 100
    limited = hardprompt.invert(
        [RED], model=tiny_clip, config=HybridConfig(steps=100000, max_forward_passes=passes, **options)
    )
    assert limited.forward_passes <= passes + 2 * limited.config["candidates"]  # + the phases' round-trip checks
    first = scan_start(objective, vocab, SearchConfig(prompt_len=3, max_forward_passes=passes, progress=False), 16, 300)
    assert limited.history[0] == pytest.approx(first.projected_score)  # the scan paid for, it came first
    too_few = hardprompt.invert(
        [RED], model=tiny_clip, config=HybridConfig(steps=100000, max_forward_passes=200, **options)
    )
    pez_only = hardprompt.invert(
        [RED], model=tiny_clip, config=PEZConfig(prompt_len=3, steps=100000, max_forward_passes=150, progress=False)
    )
    assert too_few.history[: len(pez_only.history)] == pez_only.history  # no scan it could not pay for: PEZ first
    timed = hardprompt.invert([RED], model=tiny_clip, config=HybridConfig(steps=100000, max_seconds=1.0, **options))
    assert timed.seconds < 1.0 + 1.0


def test_a_ranking_stopped_early_ranks_the_tokens_it_scored(fox):
    objective, vocab = fox
    allowed = vocab.allowed_ids
    calls = []

    def after_two_calls() -> bool:
        calls.append(1)
        return len(calls) > 2

    tracker = tracker_for(vocab, objective)
    ranked = scan.rank_tokens(
        objective, vocab, tracker, after_two_calls, tokens=5, sample=len(allowed), chunk=7, seed=0
    )
    scored = allowed[torch.randperm(len(allowed), generator=torch.Generator().manual_seed(0))[:14]].tolist()
    scores = single_scores(objective, scored)
    assert tracker.forward_passes == 14
    assert ranked.tolist() == sorted(scored, key=lambda token: -scores[scored.index(token)])[:5]
    assert scan.rank_tokens(objective, vocab, tracker_for(vocab, objective), lambda: True, 5, 100, 7, 0) is None


class Slow:
    """An objective that sleeps `seconds` in each evaluation (a large model on a slow machine)."""

    token_scan = True

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, seconds
        self.embedding_table = inner.embedding_table

    def new_step(self):
        self.inner.new_step()

    def evaluate(self, prompt_embeds):
        time.sleep(self.seconds)
        return self.inner.evaluate(prompt_embeds)

    def score_token_ids(self, token_ids):
        return self.inner.score_token_ids(token_ids)


def test_a_clock_too_short_to_rank_skips_the_scan_for_pez(tiny_clip, monkeypatch):
    objective, vocab = similarity_objective(tiny_clip, images=[RED])[0], build_vocabulary(tiny_clip)
    slow = Slow(objective, seconds=0.02)  # 8 rows a call: ranking min(allowed, 4,000) tokens takes over 2 s
    assert len(vocab.allowed_ids) / 8 * 0.02 > 2.0
    pez_calls, gcg_calls = [], []
    spy_on(monkeypatch, hybrid.pez, pez_calls)
    spy_on(monkeypatch, hybrid.gcg, gcg_calls)
    config = HybridConfig(prompt_len=3, steps=100000, max_seconds=2.0, search_width=8, eval_batch_size=8)
    result = hybrid.run(slow, vocab, replace(config, progress=False))
    assert result.history_seconds[0] < 0.5  # one timed call of the ranking, then the random prompt's check
    assert len(pez_calls) == 1 and [c.top_k for c in gcg_calls] == [256]  # PEZ explored; GCG without a scan
    assert result.seconds <= 2.0 + 0.5 and result.method == "hybrid"


def test_a_scan_leaves_gcg_its_share_of_the_clock(tiny_clip, monkeypatch):
    objective, vocab = similarity_objective(tiny_clip, images=[RED])[0], build_vocabulary(tiny_clip)
    slow = Slow(objective, seconds=0.05)
    pez_calls = []
    spy_on(monkeypatch, hybrid.pez, pez_calls)
    config = HybridConfig(
        prompt_len=6,
        steps=100000,
        max_seconds=6.0,
        search_width=8,
        eval_batch_size=8,
        scan_tokens=32,
        scan_sample=40,  # ranking: 80 rows, 10 calls (0.5 s); build: 24 calls; each sweep pass: 24
        scan_share=0.3,
        progress=False,
    )
    result = hybrid.run(slow, vocab, config)
    assert not pez_calls  # the scan ran
    assert result.history_seconds[0] <= 1.8 + 0.3  # its sweep stopped at 0.3 of the clock (+ a call, the checks)
    assert result.steps >= 2 and result.seconds <= 6.0 + 0.5  # GCG had the rest
    assert result.score >= result.history[0] - 1e-6

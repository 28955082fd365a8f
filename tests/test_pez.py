import pytest
import torch

import hardprompt
from hardprompt import PEZConfig
from hardprompt.apps.common import build_vocabulary
from hardprompt.objectives import FeatureSimilarity
from hardprompt.optim import pez

FAST = dict(steps=60, progress=False)


def _objective(encoder, texts, **kwargs):
    return FeatureSimilarity(encoder, encoder.encode_texts(texts), **kwargs)


class RecordingObjective:
    """Wraps an objective and records the batch size of each evaluation."""

    def __init__(self, inner, interrupt_at: int | None = None):
        self.inner = inner
        self.batches: list[int] = []
        self.interrupt_at = interrupt_at
        self.embedding_table = inner.embedding_table

    def new_step(self):
        self.inner.new_step()

    def evaluate(self, prompt_embeds):
        if self.interrupt_at is not None and len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt
        self.batches.append(prompt_embeds.shape[0])
        return self.inner.evaluate(prompt_embeds)

    def score_token_ids(self, token_ids):
        return self.inner.score_token_ids(token_ids)


def test_pez_improves_on_the_random_start_and_reports_round_trip_score(tiny_clip):
    objective = _objective(tiny_clip, ["a photo of a red fox in the snow"])
    vocab = build_vocabulary(tiny_clip)
    result = pez.run(objective, vocab, PEZConfig(prompt_len=6, **FAST))
    assert result.history[-1] > result.history[0] + 0.1
    assert result.steps == 60 and len(result.history) == 60
    # the reported score is the score of the string the user copies
    assert result.token_ids == vocab.encode(result.prompt)
    assert result.score == pytest.approx(objective.score_token_ids(vocab.encode(result.prompt)), abs=1e-6)
    assert result.projected_score <= max(result.history) + 1e-6


def test_same_seed_same_prompt_other_seed_other_prompt(tiny_clip):
    vocab = build_vocabulary(tiny_clip)

    def run(seed):
        return pez.run(_objective(tiny_clip, ["a castle"]), vocab, PEZConfig(prompt_len=4, seed=seed, **FAST))

    first, again, other = run(0), run(0), run(1)
    assert first.token_ids == again.token_ids and first.history == again.history
    assert first.history != other.history


def test_restarts_share_one_batched_forward_per_step(tiny_clip):
    objective = RecordingObjective(_objective(tiny_clip, ["a castle on a hill"]))
    pez.run(objective, build_vocabulary(tiny_clip), PEZConfig(prompt_len=4, restarts=5, **FAST))
    assert objective.batches == [5] * 60  # one forward per step, all restarts together, scoring included


def test_best_over_restarts_is_at_least_the_single_run(tiny_clip):
    """Restart 0 of a batch starts where a single run with the same seed starts, and rows are independent."""
    vocab = build_vocabulary(tiny_clip)
    objective = _objective(tiny_clip, ["a bowl of ramen with chopsticks"])
    single = pez.run(objective, vocab, PEZConfig(prompt_len=4, **FAST))
    batched = pez.run(objective, vocab, PEZConfig(prompt_len=4, restarts=4, **FAST))
    assert batched.history[0] >= single.history[0]
    assert batched.projected_score >= single.projected_score - 1e-6


def test_interrupt_keeps_the_best_prompt_so_far(tiny_clip):
    objective = RecordingObjective(_objective(tiny_clip, ["a snowy mountain"]), interrupt_at=25)
    result = pez.run(objective, build_vocabulary(tiny_clip), PEZConfig(prompt_len=4, **FAST))
    assert result.interrupted and result.steps == 25 and len(result.history) == 25
    assert result.prompt and result.projected_score == pytest.approx(max(result.history))


def test_time_budget_stops_early(tiny_clip):
    result = pez.run(
        _objective(tiny_clip, ["a lake"]),
        build_vocabulary(tiny_clip),
        PEZConfig(prompt_len=4, steps=100000, max_seconds=0.5, progress=False),
    )
    assert 0 < result.steps < 100000 and result.seconds < 5


def test_minibatch_loss_uses_a_subset_and_score_uses_all_targets(tiny_clip):
    targets = tiny_clip.encode_texts(["a dog", "a boat", "a forest", "a city at night"])
    objective = FeatureSimilarity(tiny_clip, targets, batch_size=1, seed=3)
    embeds = tiny_clip.embedding_table[torch.tensor([tiny_clip.tokenize("a dog on a boat")])].requires_grad_(True)
    objective.new_step()
    evaluation = objective.evaluate(embeds)
    similarity = (tiny_clip.encode_prompt_embeddings(embeds) @ targets.T)[0]
    assert evaluation.score.item() == pytest.approx(similarity.mean().item(), abs=1e-5)
    assert any(evaluation.loss.item() == pytest.approx(1 - s, abs=1e-5) for s in similarity.tolist())
    assert evaluation.loss.requires_grad and not evaluation.score.requires_grad


def test_negative_targets_push_the_prompt_away(minilm):
    text = "a golden retriever dog playing fetch on a sunny beach"
    config = PEZConfig(prompt_len=6, steps=150, progress=False)
    plain = hardprompt.distill(text, model=minilm, config=config)
    pushed = hardprompt.distill(text, model=minilm, config=config, negatives=["dog"], negative_weight=1.0)
    dog = minilm.encode_texts(["dog"])[0]

    def similarity_to_dog(prompt):
        return float(minilm.encode_texts([prompt])[0] @ dog)

    assert similarity_to_dog(pushed.prompt) < similarity_to_dog(plain.prompt) - 0.1
    assert pushed.config["negatives"] == ["dog"]


def test_distilling_a_long_prompt_to_8_tokens_reaches_cosine_0_8(minilm):
    """The real-model end-to-end check: all-MiniLM-L6-v2, 8 tokens."""
    text = (
        "a highly detailed oil painting of an old lighthouse on a rocky cliff during a violent storm at night, "
        "huge waves crashing, dramatic lighting, by a romantic era master"
    )
    result = hardprompt.distill(text, model=minilm, config=PEZConfig(prompt_len=8, steps=300, progress=False))
    assert len(minilm.tokenize(result.prompt)) <= 8
    cosine = float(minilm.encode_texts([result.prompt])[0] @ minilm.encode_texts([text])[0])
    assert cosine == pytest.approx(result.score, abs=1e-4)
    assert cosine >= 0.8


def test_ratio_sets_the_prompt_length(minilm):
    text = "a red sports car parked in front of a modern glass house at dusk"
    result = hardprompt.distill(text, model=minilm, config=PEZConfig(steps=5, progress=False), ratio=0.3)
    assert result.config["prompt_len"] == round(0.3 * minilm.count_tokens(text))


def test_invert_many_images_with_bank_and_blocklist(tiny_clip, images):
    bank = ["oil painting", "red square", "green field", "blue sky", "white cloud", "a photo of"]
    result = hardprompt.invert(
        images,
        model=tiny_clip,
        config=PEZConfig(prompt_len=5, batch_size=1, **FAST),
        bank=bank,
        blocklist=["red"],
    )
    bank_ids = {i for phrase in bank for i in tiny_clip.tokenize(phrase)}
    assert set(result.token_ids) <= bank_ids
    assert "red" not in result.prompt.lower()
    assert result.config["images"] == [str(p) for p in images] and result.config["batch_size"] == 1
    assert result.history[-1] > result.history[0]


@pytest.mark.parametrize(("bfloat16_scan", "shortlist"), [(True, 64), (True, 1), (False, 64)])
def test_projection_is_the_exact_float32_nearest_token(minilm, bfloat16_scan, shortlist):
    """The bfloat16 shortlist never changes the answer, also for rows it cannot certify (shortlist 1)."""
    vocab = build_vocabulary(minilm)
    table = minilm.embedding_table.detach()
    project = pez.NearestTokenProjection(table, vocab.allowed_ids, shortlist, bfloat16_scan=bfloat16_scan)
    generator = torch.Generator().manual_seed(0)
    near_tokens = table[vocab.allowed_ids[:64]] + 0.01 * torch.randn(64, table.shape[1], generator=generator)
    drifted = 30 * torch.randn(64, table.shape[1], generator=generator)  # far from every token, as PEZ drifts
    queries = torch.stack([near_tokens, drifted])
    unit_table = torch.nn.functional.normalize(table[vocab.allowed_ids], dim=-1)
    expected = vocab.allowed_ids[(torch.nn.functional.normalize(queries, dim=-1) @ unit_table.T).argmax(dim=-1)]
    assert torch.equal(project(queries), expected)
    assert torch.equal(project(queries[0])[None], expected[:1])
    assert (expected[0] == vocab.allowed_ids[:64]).float().mean() > 0.9  # the near-token rows mean something


def test_bfloat16_weights_give_float32_features_close_to_the_float32_model(tiny_clip_dir, tiny_clip):
    half = hardprompt.load_text_encoder(str(tiny_clip_dir), device="cpu", dtype="bfloat16")
    assert half.embedding_table.dtype == torch.bfloat16
    ids = tiny_clip.tokenize("a photo of a cat")
    features = half.encode_token_ids(ids)
    assert features.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(features, tiny_clip.encode_token_ids(ids)).item() > 0.99
    result = hardprompt.distill("a photo of a cat", model=half, config=PEZConfig(prompt_len=4, **FAST))
    float32_score = _objective(tiny_clip, ["a photo of a cat"]).score_token_ids(result.token_ids)
    assert result.score == pytest.approx(float32_score, abs=0.02)


def test_custom_models_refuse_other_precisions():
    with pytest.raises(hardprompt.HardpromptError, match="float32 only"):
        hardprompt.load_text_encoder("shapes", device="cpu", dtype="bfloat16")

"""The hybrid method, --words-only with readability, and --patience."""

import pytest
import torch

import hardprompt
from hardprompt.apps.common import build_vocabulary
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.objectives import FeatureSimilarity
from hardprompt.optim import HybridConfig, PEZConfig, build_config, pez
from hardprompt.optim.registry import METHODS
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
    def run(seed):
        config = HybridConfig(prompt_len=4, steps=40, search_width=16, seed=seed, progress=False)
        return hardprompt.distill(TEXT, model=tiny_clip, config=config)

    first, again, other = run(0), run(0), run(1)
    assert first.token_ids == again.token_ids and first.history == again.history
    assert first.history != other.history
    explored = hardprompt.distill(TEXT, model=tiny_clip, config=PEZConfig(prompt_len=4, steps=20, progress=False))
    assert first.score >= explored.score - 1e-6  # GCG starts from PEZ's best string and keeps the better


def test_hybrid_rejects_a_bad_split(tiny_clip):
    with pytest.raises(HardpromptError, match="explore"):
        HybridConfig(explore=1.0).validate()


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

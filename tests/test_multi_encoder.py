"""One prompt for several text encoders (SDXL's pair): objective, block-wise projection, apps and CLI."""

import json

import pytest
import torch
import torch.nn.functional as F
from tiny_models import save_tiny_clip

from hardprompt import PEZConfig, invert, load_text_encoder
from hardprompt.apps.common import model_list
from hardprompt.cli import main
from hardprompt.io import load_image
from hardprompt.objectives import FeatureSimilarity
from hardprompt.objectives.base import TableBlock
from hardprompt.objectives.multi_encoder import MultiEncoderObjective
from hardprompt.optim.gcg import GCGConfig
from hardprompt.optim.pez import NearestTokenProjection
from hardprompt.optim.search import TokenGradient
from hardprompt.optim.tracking import SearchTracker
from hardprompt.vocab import Vocabulary


@pytest.fixture(scope="module")
def other_clip_dir(tmp_path_factory):
    """A second tiny random CLIP with the same vocabulary, another width (48) and other weights."""
    return save_tiny_clip(tmp_path_factory.mktemp("other-clip"), seed=1, hidden=48, projection=24)


@pytest.fixture(scope="module")
def other_clip(other_clip_dir):
    return load_text_encoder(str(other_clip_dir), device="cpu")


@pytest.fixture(scope="module")
def pair(tiny_clip, other_clip, images):
    """The two CLIPs' image objectives and their MultiEncoderObjective (weights 1 and 2)."""
    pictures = [load_image(path) for path in images[:2]]
    objectives = [FeatureSimilarity(e, e.encode_images(pictures)) for e in (tiny_clip, other_clip)]
    return objectives, MultiEncoderObjective([tiny_clip.name, other_clip.name], objectives, [1.0, 2.0])


def test_the_table_is_both_tables_side_by_side_and_the_loss_their_weighted_sum(pair, tiny_clip, other_clip):
    (first, second), both = pair
    assert both.embedding_table.shape == (49408, 32 + 48)
    assert both.table_blocks == (TableBlock(32, 1.0), TableBlock(48, 2.0))
    ids = torch.tensor([tiny_clip.tokenize("a red photo of a dog")])
    evaluation = both.evaluate(both.embedding_table[ids])
    one, two = first.evaluate(tiny_clip.embedding_table[ids]), second.evaluate(other_clip.embedding_table[ids])
    torch.testing.assert_close(evaluation.loss, one.loss + 2 * two.loss)
    torch.testing.assert_close(evaluation.score, (one.score + 2 * two.score) / 3)
    scores = both.scores_by_model(ids[0].tolist())
    assert scores == {tiny_clip.name: first.score_token_ids(ids[0]), other_clip.name: second.score_token_ids(ids[0])}


def test_block_projection_is_the_highest_weighted_sum_of_per_encoder_cosines(pair, tiny_clip):
    _, both = pair
    vocab = Vocabulary(tiny_clip.tokenizer, 49408, tiny_clip.tokenize)
    project = NearestTokenProjection(both.embedding_table, vocab.allowed_ids, blocks=both.table_blocks)
    queries = torch.randn(3, 5, 80, generator=torch.Generator().manual_seed(0))
    table = both.embedding_table[vocab.allowed_ids]
    cosines = [
        F.normalize(q, dim=-1) @ F.normalize(t, dim=-1).T
        for q, t in zip(queries.split([32, 48], -1), table.split([32, 48], -1), strict=True)
    ]
    expected = vocab.allowed_ids[(cosines[0] + 2 * cosines[1]).argmax(dim=-1)]
    assert torch.equal(project(queries), expected)
    plain = NearestTokenProjection(both.embedding_table, vocab.allowed_ids)
    assert not torch.equal(plain(queries), expected), "one normalization over both blocks is another projection"


def test_token_gradients_are_the_weighted_sum_of_per_encoder_token_gradients(pair, tiny_clip, other_clip):
    (first, second), both = pair
    allowed = torch.arange(1000)
    ids = torch.tensor([tiny_clip.tokenize("a small blue square")])

    def token_gradient(objective):
        tracker = SearchTracker(Vocabulary(tiny_clip.tokenizer, 49408, tiny_clip.tokenize), steps=1, progress=False)
        return TokenGradient(objective.embedding_table, allowed)(objective, ids, tracker)[1]

    expected = token_gradient(first) + 2 * token_gradient(second)
    torch.testing.assert_close(token_gradient(both), expected, atol=1e-5, rtol=1e-4)


def test_weights_one_and_zero_reproduce_the_single_encoder_run(tiny_clip_dir, other_clip_dir, images):
    config = PEZConfig(prompt_len=4, steps=25, progress=False)
    single = invert(images[:2], model=str(tiny_clip_dir), config=config, device="cpu")
    both = invert(
        images[:2], model=[str(tiny_clip_dir), str(other_clip_dir)], model_weights=[1, 0], config=config, device="cpu"
    )
    assert both.token_ids == single.token_ids and both.history == single.history
    assert both.score == single.score and both.scores_by_model[str(tiny_clip_dir)] == single.score
    assert both.model == f"{tiny_clip_dir} + {other_clip_dir}" and both.config["model_weights"] == [1.0, 0.0]


@pytest.mark.parametrize(
    "method_config",
    [
        PEZConfig(prompt_len=4, steps=20, progress=False),
        GCGConfig(prompt_len=4, steps=4, search_width=16, progress=False),
    ],
)
def test_scores_by_model_are_single_model_rescores_of_the_string(tiny_clip, other_clip, images, method_config):
    pictures = [load_image(path) for path in images[:2]]
    result = invert(pictures, model=[tiny_clip, other_clip], config=method_config)
    assert set(result.scores_by_model) == {tiny_clip.name, other_clip.name}
    for encoder in (tiny_clip, other_clip):
        alone = FeatureSimilarity(encoder, encoder.encode_images(pictures)).score_token_ids(
            encoder.tokenize(result.prompt)
        )
        assert result.scores_by_model[encoder.name] == pytest.approx(alone, abs=1e-6)
    assert result.score == pytest.approx(sum(result.scores_by_model.values()) / 2, abs=1e-6)
    assert tiny_clip.supports_images and other_clip.supports_images, "adapters passed in keep their image towers"


def test_distill_for_two_encoders_through_the_cli(tiny_clip_dir, other_clip_dir, tmp_path, capsys):
    out = tmp_path / "distilled.json"
    argv = ["distill", "a red circle on a blue background", "--model", tiny_clip_dir, "--model", other_clip_dir]
    options = ["--model-weights", "1,3", "--prompt-len", 3, "--steps", 15, "--quiet", "--device", "cpu", "--out", out]
    code = main([str(a) for a in [*argv, *options]])
    assert code == 0
    record = json.loads(out.read_text())
    assert list(record["scores_by_model"]) == [str(tiny_clip_dir), str(other_clip_dir)]
    first, second = record["scores_by_model"].values()
    assert record["score"] == pytest.approx((first + 3 * second) / 4, abs=1e-6)
    assert capsys.readouterr().out.strip() == record["prompt"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--model", "minilm"], "do not share a token vocabulary"),
        (["--model-weights", "1"], "1 model weights for 2 models"),
        (["--model-weights", "1,-1"], "model weights must be non-negative"),
        (["--model-weights", "1,x"], "not a comma-separated list of numbers"),
    ],
)
def test_bad_model_combinations_are_one_line_errors(tiny_clip_dir, other_clip_dir, capsys, extra, fragment):
    second = [] if extra[0] == "--model" else ["--model", str(other_clip_dir)]
    argv = ["distill", "a cat", "--model", str(tiny_clip_dir), *second, *extra, "--steps", "1", "--quiet"]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("hardprompt: error:") and fragment in err[0], err


def test_sdxl_names_the_clips_of_its_two_text_encoders():
    assert model_list("sdxl") == ["openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"]
    assert model_list(["minilm", "sdxl"])[1:] == model_list("sdxl")

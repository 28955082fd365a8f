"""The CUDA paths; skipped where no GPU is present (CI), run on a lent GPU machine."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hardprompt
from hardprompt import PEZConfig
from hardprompt.apps.common import build_vocabulary
from hardprompt.generation import GenerationConfig, ImageGenerator
from hardprompt.objectives import FeatureSimilarity
from hardprompt.optim.pez import NearestTokenProjection

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_cuda_projection_is_the_exact_float32_nearest_token(minilm):
    table = minilm.embedding_table.detach().cuda()
    allowed = build_vocabulary(minilm).allowed_ids
    project = NearestTokenProjection(table, allowed)
    assert project.coarse_table is not None, "a GPU takes the bfloat16 shortlist path"
    generator = torch.Generator(device="cuda").manual_seed(0)
    anchors = table[allowed.cuda()[:2048]]
    for scale in (0.001, 0.1, 30.0):  # next to a token, in between, drifted far away
        queries = anchors + scale * table.std() * torch.randn(anchors.shape, device="cuda", generator=generator)
        unit_table = F.normalize(table[allowed.cuda()], dim=-1)
        expected = allowed.cuda()[(F.normalize(queries, dim=-1) @ unit_table.T).argmax(dim=-1)]
        assert torch.equal(project(queries.view(128, 16, -1)).flatten(), expected)


def test_cuda_distillation_matches_the_cpu(tiny_clip_dir):
    text = "a photo of a red cat on a sofa"
    config = PEZConfig(prompt_len=4, steps=60, progress=False)
    cpu = hardprompt.distill(text, model=str(tiny_clip_dir), device="cpu", config=config)
    gpu = hardprompt.distill(text, model=str(tiny_clip_dir), device="cuda", dtype="float32", config=config)
    assert gpu.score == pytest.approx(cpu.score, abs=0.02)
    half = hardprompt.distill(text, model=str(tiny_clip_dir), device="cuda", dtype="bfloat16", config=config)
    assert half.score > cpu.history[0]


def test_cuda_generation_runs_in_half_precision(tiny_sd_dir):
    generator = ImageGenerator(str(tiny_sd_dir), device="auto", progress=False)
    assert generator.pipeline.unet.dtype == torch.float16
    images = generator.generate("a red circle", GenerationConfig(n=2, steps=2, seed=0))
    assert len(images) == 2 and not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def _write_images(folder, count):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.png"
        Image.new("RGB", (40, 40), (40 * i % 256, 200 - 30 * i, 90 + 20 * i)).save(path)
        paths.append(path)
    return paths


def test_cuda_graph_step_is_the_eager_step(tiny_clip_dir, tmp_path):
    """Captured and replayed, the PEZ step follows the same path as eager (same tokens, scores to rounding)."""
    from hardprompt.optim.pez import ProjectedGradientStep

    paths = _write_images(tmp_path, 4)
    runs = {}
    for graph in (False, True):
        config = PEZConfig(prompt_len=4, steps=40, restarts=2, cuda_graph=graph, progress=False)
        runs[graph] = list(
            hardprompt.invert_each(paths, model=str(tiny_clip_dir), config=config, device="cuda", images_per_batch=4)
        )
    for eager, graphed in zip(runs[False], runs[True], strict=True):
        assert graphed.token_ids == eager.token_ids
        assert graphed.history == pytest.approx(eager.history, abs=1e-4)
    encoder = hardprompt.load_text_encoder(str(tiny_clip_dir), device="cuda")
    objective = FeatureSimilarity(encoder, encoder.encode_texts(["a", "b"]), batch_size=1)
    step = ProjectedGradientStep(objective, build_vocabulary(encoder), PEZConfig(cuda_graph=True))
    assert not step.graphed  # a host-drawn minibatch cannot be replayed
    for _ in range(ProjectedGradientStep.WARMUP_STEPS + 2):
        step()
    graphed = ProjectedGradientStep(
        FeatureSimilarity(encoder, encoder.encode_texts(["a"])), build_vocabulary(encoder), PEZConfig(cuda_graph=True)
    )
    for _ in range(ProjectedGradientStep.WARMUP_STEPS + 2):
        graphed()
    assert graphed.graphed and graphed._graph is not None


def test_cuda_folder_inversion_matches_the_cpu(tiny_clip_dir, tmp_path):
    paths = _write_images(tmp_path, 3)
    config = PEZConfig(prompt_len=4, steps=30, progress=False)
    cpu = list(hardprompt.invert_each(paths, model=str(tiny_clip_dir), config=config, device="cpu"))
    gpu = list(hardprompt.invert_each(paths, model=str(tiny_clip_dir), config=config, device="cuda"))
    for a, b in zip(cpu, gpu, strict=True):
        assert b.score == pytest.approx(a.score, abs=0.02)
        assert b.config["seed"] == a.config["seed"]


def test_cuda_weights_are_float16_by_default_and_two_encoders_invert(tiny_clip_dir, images):
    encoder = hardprompt.load_text_encoder(str(tiny_clip_dir), device="cuda", dtype="auto")
    assert encoder.embedding_table.dtype == torch.float16
    config = PEZConfig(prompt_len=4, steps=30, progress=False)
    result = hardprompt.invert(
        images[:2], model=[str(tiny_clip_dir)] * 2, model_weights=[1, 1], device="cuda", config=config
    )
    assert result.history[-1] > result.history[0], "PEZ improves on its first step"
    assert result.config["model_weights"] == [1.0, 1.0]

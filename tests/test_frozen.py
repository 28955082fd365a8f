import copy

import pytest
import torch
from torch import nn

from hardprompt.models import frozen
from hardprompt.models.frozen import PackedLinear, freeze, pack_linear_layers, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN packed linears")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(24, 40), nn.GELU(), nn.Sequential(nn.Linear(40, 8, bias=False)))


def _output_and_input_gradient(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.clone().requires_grad_(True)
    out = model(inputs)
    (gradient,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1])).sum(), inputs)
    return out.detach(), gradient


def test_packed_layers_give_the_plain_outputs_and_input_gradients():
    plain = _mlp().requires_grad_(False)
    packed = pack_linear_layers(copy.deepcopy(plain))
    assert [type(m) for m in packed.modules()].count(PackedLinear) == 2
    inputs = torch.randn(3, 18, 24)  # 3-d input, as a transformer's hidden states
    reference = _output_and_input_gradient(plain.double(), inputs.double())
    for ours, theirs in zip(_output_and_input_gradient(packed, inputs), reference, strict=True):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours.double(), theirs, atol=1e-5, rtol=1e-5)


def test_packed_layer_follows_changes_of_its_weight():
    model = pack_linear_layers(_mlp().requires_grad_(False))
    inputs = torch.randn(5, 24)
    before = model(inputs)
    with torch.no_grad():
        model[0].weight.mul_(-1.0)  # in place: the packed copy must be rebuilt
    flipped = _mlp().requires_grad_(False)
    with torch.no_grad():
        flipped[0].weight.mul_(-1.0)
    torch.testing.assert_close(model(inputs), flipped(inputs), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(inputs), before)


def test_packed_layers_fall_back_where_packing_does_not_apply():
    inputs = torch.randn(4, 24)
    model = pack_linear_layers(_mlp().requires_grad_(False)).to(torch.bfloat16)
    assert model(inputs.bfloat16()).dtype == torch.bfloat16
    trainable = pack_linear_layers(_mlp())  # weights that need gradients get them, through F.linear
    trainable(inputs).sum().backward()
    assert trainable[0].weight.grad is not None and trainable[0].weight.grad.abs().sum() > 0


def test_freeze_packs_on_cpu_and_copies_of_a_frozen_model_work(tiny_clip):
    assert any(isinstance(m, PackedLinear) for m in tiny_clip.model.modules())
    ids = tiny_clip.tokenize("a photo of a cat")
    copied = copy.deepcopy(tiny_clip.model)  # packed oneDNN tensors have no storage: copies repack
    features = tiny_clip.encode_token_ids(ids)
    tiny_clip_copy = copy.copy(tiny_clip)
    tiny_clip_copy.model = copied
    torch.testing.assert_close(tiny_clip_copy.encode_token_ids(ids), features)
    model = freeze(_mlp(), torch.device("cpu"))
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_low_memory_leaves_linear_weights_unpacked_and_the_cli_takes_it(tiny_clip, tiny_clip_dir, tmp_path):
    import hardprompt
    from hardprompt.cli import main

    with hardprompt.low_memory():
        plain = freeze(_mlp(), torch.device("cpu"))
        text_only = hardprompt.load_text_encoder(str(tiny_clip_dir), device="cpu", image_tower=False)
    assert not any(isinstance(m, PackedLinear) for m in [*plain.modules(), *text_only.model.modules()])
    assert any(isinstance(m, PackedLinear) for m in freeze(_mlp(), torch.device("cpu")).modules())
    ids = tiny_clip.tokenize("a photo of a cat")
    torch.testing.assert_close(text_only.encode_token_ids(ids), tiny_clip.encode_token_ids(ids))
    out = tmp_path / "r.json"
    argv = ["distill", "a red fox", "--model", str(tiny_clip_dir), "--prompt-len", "2", "--steps", "3"]
    packed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(frozen, "pack_linear_layers", lambda model: packed.append(model) or model)
        assert main([*argv, "--low-memory", "--out", str(out), "--quiet"]) == 0 and out.exists()
        assert packed == []
        assert main([*argv, "--out", str(out), "--quiet"]) == 0 and len(packed) == 1

"""Frozen models: evaluation mode, no weight gradients, and pre-packed linear layers on the CPU.

Prompt optimization runs a frozen model on few rows (a PEZ step of CLIP's text tower is 18
positions per prompt). At so few rows a general CPU matrix product spends most of its time
re-arranging (packing) its weight operand, which it does on every call. `freeze` therefore swaps
every `nn.Linear` of a model on the CPU for a `PackedLinear`, which packs its weight once into
oneDNN's blocked layout (and, when an input gradient is first asked for, the transposed weight
too) and reuses it. Measured on a 2-core AVX2 CPU: an 18 x 512 by 512 x 2048 product takes 0.25 ms
packed against 0.54 ms plain; the gain shrinks to about 1.1x at 1,000 rows. Results are float32
products as before, summed in another order (differences of order 1e-6). The packed copies cost
memory (two per linear weight); inside `low_memory()` models are left unpacked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn


@cache
def packing_available() -> bool:
    """Whether this torch build has oneDNN's pre-packed linear kernels (CPU builds with mkldnn)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        out = packed_product(torch.ones(1, 3), pack(torch.ones(2, 3)))
    except (AttributeError, RuntimeError):
        return False
    return bool(torch.equal(out, torch.full((1, 2), 3.0)))


def pack(matrix: torch.Tensor) -> torch.Tensor:
    """`matrix` (out, in), float32 on the CPU, packed for `packed_product` (an opaque oneDNN tensor)."""
    return torch.ops.mkldnn._reorder_linear_weight(matrix.detach().contiguous())


def packed_product(inputs: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """inputs @ matrixᵀ (+ bias) for a matrix packed by `pack`; no autograd."""
    return torch.ops.mkldnn._linear_pointwise(inputs.contiguous(), packed, bias, "none", [], "")


class _PackedLinearFunction(torch.autograd.Function):
    """y = x Wᵀ + b with packed weights; the backward gives the input gradient only (W, b are frozen)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, layer: PackedLinear) -> torch.Tensor:
        ctx.layer = layer
        return packed_product(inputs, layer.packed("forward"), layer.bias)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return packed_product(grad_output, ctx.layer.packed("transpose"), None), None


class PackedLinear(nn.Linear):
    """An `nn.Linear` of a frozen model whose weight is packed once for oneDNN on the CPU.

    It shares the original layer's parameters, so moving, casting or loading the model still works;
    the packed copies are rebuilt whenever the weight changes (device, dtype, data or version), and
    the layer falls back to `F.linear` wherever packing does not apply (not float32 on the CPU, or a
    weight that requires a gradient).
    """

    def __init__(self, linear: nn.Linear) -> None:
        nn.Module.__init__(self)  # not nn.Linear.__init__: the parameters are the original layer's
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self._packed: dict[str, tuple[tuple, torch.Tensor]] = {}

    def packed(self, kind: str) -> torch.Tensor:
        """The packed weight ("forward") or packed transposed weight ("transpose"), built on first use."""
        weight = self.weight
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
        cached = self._packed.get(kind)
        if cached is None or cached[0] != key:
            cached = (key, pack(weight if kind == "forward" else weight.t()))
            self._packed[kind] = cached
        return cached[1]

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weights behind (oneDNN tensors have no storage); they repack."""
        state = self.__dict__.copy()
        state["_packed"] = {}
        return state

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (
            weight.requires_grad
            or weight.device.type != "cpu"
            or weight.dtype != torch.float32
            or inputs.dtype != torch.float32
        ):
            return F.linear(inputs, weight, self.bias)
        return _PackedLinearFunction.apply(inputs, self)


def pack_linear_layers(model: nn.Module) -> nn.Module:
    """Replace every plain `nn.Linear` inside `model` with a `PackedLinear` sharing its parameters."""
    for name, child in model.named_children():
        if type(child) is nn.Linear:
            setattr(model, name, PackedLinear(child))
        else:
            pack_linear_layers(child)
    return model


_low_memory: ContextVar[bool] = ContextVar("hardprompt_low_memory", default=False)


@contextlib.contextmanager
def low_memory(enabled: bool = True) -> Iterator[None]:
    """Models frozen inside keep their linear weights unpacked (`freeze`): two fewer copies of every
    linear weight of a float32 model on the CPU, for slower steps there. No effect on a GPU.

    A context variable: it holds in this thread (and tasks it starts), not in threads started
    inside it, so enter it where the models load."""
    token = _low_memory.set(enabled)
    try:
        yield
    finally:
        _low_memory.reset(token)


def freeze(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` in evaluation mode, without weight gradients, on `device`; on the CPU with packed linears
    (unless inside `low_memory()`)."""
    model = model.eval().requires_grad_(False).to(device)
    if device.type == "cpu" and not _low_memory.get() and packing_available():
        pack_linear_layers(model)
    return model

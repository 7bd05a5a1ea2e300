"""Inference copies of the transformers in reduced precision (the ``int8`` precision mode, CPU only).

``int8_copy`` quantises **every** ``nn.Linear`` of a model dynamically (int8 weights per output channel, int8
activations quantised per call; FBGEMM on x86): the attention in-projections too, which the official layout
packs into a bare ``in_proj_weight`` parameter (it is first moved into an ``nn.Linear``,
:meth:`SelfAttention.split_in_proj`). Embeddings, LayerNorms, attention itself and the residual transformer's
tied output projection (an einsum over its per-layer tables, ~2 % of its FLOPs) stay float32; logits, guidance
and sampling are float32. Samples differ from fp32 ones (token agreement and FID: benchmarks/README.md).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from models.transformer.common import SelfAttention


def int8_copy(model: nn.Module) -> nn.Module:
    """A dynamically int8-quantised eval copy of ``model`` (CPU); ``model`` itself is not changed."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 precision runs on the CPU only (dynamic quantisation)")
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        if isinstance(module, SelfAttention):
            module.split_in_proj()
    # torch.ao.quantization is deprecated in favour of torchao (not a dependency); it still works in torch 2.13.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning))
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        return torch.ao.quantization.quantize_dynamic(twin, {nn.Linear: qconfig}, dtype=torch.qint8)

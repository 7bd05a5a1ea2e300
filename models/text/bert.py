"""A lean BERT encoder (embeddings + post-LayerNorm layers) over a local model folder, without ``transformers``.

all-MiniLM-L6-v2 is a 6-layer BERT: importing ``transformers`` and building its model class costs seconds on a
first command (the library pulls in distributed tensors, symbolic shapes and generation utilities), while the
forward pass is a few matrix products. This module reads the folder's ``config.json``, its weights
(``model.safetensors``, or ``pytorch_model.bin`` with ``weights_only=True``) and its fast-tokenizer
``tokenizer.json`` (``tokenizers`` package), and computes the same last hidden states as ``BertModel``.

Parameter names are the checkpoint's own (``embeddings.word_embeddings.weight``,
``encoder.layer.<i>.attention.self.query.weight``, ...), so the state dict loads strictly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class BertConfig:
    """The ``config.json`` fields a BERT encoder forward needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_folder(cls, folder: Path) -> BertConfig:
        """Read ``folder/config.json``; only absolute-position, erf-GELU BERT models are supported."""
        raw = json.loads((folder / "config.json").read_text())
        if (
            raw.get("model_type") != "bert"
            or raw.get("hidden_act", "gelu") != "gelu"
            or raw.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ValueError(
                f"{folder / 'config.json'}: not a BERT encoder with absolute positions and GELU "
                f"(model_type={raw.get('model_type')!r}, hidden_act={raw.get('hidden_act')!r})"
            )
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class _Linear(nn.Linear):
    """``nn.Linear`` left uninitialised: every parameter is overwritten by the checkpoint (random init of the
    12M weights would cost a first command ~0.5 s; ``torch.device("meta")`` would import torch._dynamo)."""

    def reset_parameters(self) -> None:
        pass


class _Embedding(nn.Embedding):
    """``nn.Embedding`` left uninitialised (see :class:`_Linear`)."""

    def reset_parameters(self) -> None:
        pass


class _Dense(nn.Module):
    """``dense`` (+ optional ``LayerNorm``) with the checkpoint's names."""

    def __init__(self, d_in: int, d_out: int, eps: float | None) -> None:
        super().__init__()
        self.dense = _Linear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.query, self.key, self.value = _Linear(d, d), _Linear(d, d), _Linear(d, d)


class _Attention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(cfg.hidden_size)
        self.output = _Dense(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)


class BertLayer(nn.Module):
    """Post-LN layer: ``x = LN(x + Attn(x)); x = LN(x + W2 gelu(W1 x))``."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.attention = _Attention(cfg)
        self.intermediate = _Dense(cfg.hidden_size, cfg.intermediate_size, None)
        self.output = _Dense(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """x: (B, t, d); bias: (B, 1, 1, t) additive key mask (0 or −inf-like) -> (B, t, d)."""
        b, t, d = x.shape
        att = self.attention
        q, k, v = (
            lin(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for lin in (att.self.query, att.self.key, att.self.value)
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias  # (B, h, t, t)
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = att.output.LayerNorm(att.output.dense(ctx) + x)
        hidden = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(hidden) + x)


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = _Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = _Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class _Encoder(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))


class BertEncoder(nn.Module):
    """Token ids (B, t) + attention mask (B, t) -> last hidden states (B, t, d); single segment (type 0)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        emb = self.embeddings
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = emb.word_embeddings(input_ids) + emb.position_embeddings(pos) + emb.token_type_embeddings.weight[0]
        x = emb.LayerNorm(x)
        bias = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(attention_mask == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x


def read_weights(folder: Path) -> dict[str, Tensor]:
    """The folder's encoder weights (safetensors preferred; ``.bin`` via ``torch.load(weights_only=True)``),
    without the ``bert.`` prefix some exports carry; pooler weights and position-id buffers dropped."""
    path = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{folder}: none of {', '.join(WEIGHT_FILES)} found (the encoder's weights)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}


def load_bert(folder: Path) -> BertEncoder:
    """A :class:`BertEncoder` with the folder's weights, strictly loaded, in eval mode."""
    model = BertEncoder(BertConfig.from_folder(folder))
    model.load_state_dict(read_weights(folder), strict=True, assign=True)
    return model.eval()


class WordPieceTokenizer:
    """The folder's ``tokenizer.json`` through the ``tokenizers`` package, without its stored padding/truncation.

    ``__call__(captions, max_tokens)`` -> (ids (B, t) int64, mask (B, t) int64, full lengths before truncation).
    """

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, captions: list[str], max_tokens: int) -> tuple[Tensor, Tensor, list[int]]:
        encodings = self.tokenizer.encode_batch(captions)
        full = [len(e.ids) for e in encodings]
        rows = [e.ids if len(e.ids) <= max_tokens else e.ids[: max_tokens - 1] + e.ids[-1:] for e in encodings]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask, full

"""Token sampling and the generation / editing loops (docs/sampling.md).

Seeded identity with the official code. Every random number is drawn with the reference's call, count and
*memory order*, so the same seed gives the same ids (checked id for id against the official fixture's
``sampling_ref.npz``, ``mask_ref.npz`` and ``res_ref.npz`` in tests/test_sampling_identity.py):

* masked transformer, Gumbel (``gsample``): one ``uniform_`` of B·n·K numbers per step, filled in the
  reference's (seq, batch, classes) memory order (``MASK_DRAW_ORDER``) whatever layout our logits have;
* masked transformer, categorical: one ``multinomial`` draw per (batch, seq) row of the renormalised
  ``softmax(logits/τ)``, rows in (batch, seq) order;
* residual transformer (always Gumbel): per layer 1..Q−1 one ``uniform_`` of B·n·(K+1) numbers in the
  reference's (batch, classes, seq) order (``RES_DRAW_ORDER``);
* editing uses the same two loops, so its draws follow the same rules; generation draws nothing else (the
  re-masking schedule is deterministic and eval-mode forwards draw no dropout).

What is reproduced: the ids, for the same seed on torch's global CPU generator or on a CPU ``torch.Generator``
seeded with it (same stream), in float32 (fp32 precision). Not reproduced: bf16/int8 precision modes (other
logits), other devices' generators (CUDA draws other numbers), our deliberate fixes (lengths never 0 tokens,
edits keep unedited tokens), and CLI runs of the official ``gen_t2m.py``, whose generator is advanced by model
construction before the first draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from models.transformer.mask_transformer import MaskTransformer
    from models.transformer.residual_transformer import ResidualTransformer

# Score given to tokens that must not be re-masked (reference value).
FROZEN_SCORE = 1e5
# Ratio of tokens re-masked at every step of mask-free editing (docs/sampling.md#editing).
MASK_FREE_RATIO = 0.16
# Memory order (as a permutation of our (B, n, classes) logits' dims) in which the reference fills its noise:
# QUIRK(reference): the masked transformer's logits are a view of a (seq, batch, classes) tensor, the residual
# transformer's of a (batch, classes, seq) one, and ``uniform_`` fills memory in order.
MASK_DRAW_ORDER = (1, 0, 2)
RES_DRAW_ORDER = (0, 2, 1)

# Optional logits hooks (spatial control, models/control): they may rewrite the logits before each draw.
# Masked layer: (ids (B, n) with mask_id where masked, logits (B, n, K), is_mask (B, n)) -> logits (B, n, K).
BaseLogitsHook = Callable[[Tensor, Tensor, Tensor], Tensor]
# Residual layer: (layer q, ids of layers < q (B, n, q), pad_id where padded, logits (B, n, K+1)) -> logits.
ResidualLogitsHook = Callable[[int, Tensor, Tensor], Tensor]


def cosine_schedule(t: Tensor) -> Tensor:
    """Masking ratio ``cos(πt/2)`` for t in [0, 1] (1 at t = 0, ~0 at t = 1)."""
    return torch.cos(t * math.pi * 0.5)


def top_k_filter(logits: Tensor, thres: float = 0.9, dim: int = -1) -> Tensor:
    """Keep the ``ceil((1 − thres)·K)`` largest logits along ``dim`` (52 of 512 at 0.9), others −inf."""
    k = math.ceil((1 - thres) * logits.shape[dim])
    values, index = logits.topk(k, dim=dim)
    return torch.full_like(logits, float("-inf")).scatter(dim, index, values)


def uniform_in_order(like: Tensor, order: tuple[int, ...] | None, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) tensor shaped like ``like``, its numbers drawn in the memory order of ``like`` permuted by
    ``order`` (a contiguous tensor of shape ``like.shape[order]`` is filled, then permuted back); ``None`` =
    ``like``'s own logical order."""
    if order is None:
        return torch.empty_like(like, memory_format=torch.contiguous_format).uniform_(0, 1, generator=generator)
    drawn = like.new_empty([like.shape[d] for d in order]).uniform_(0, 1, generator=generator)
    return drawn.permute(sorted(range(len(order)), key=order.__getitem__))


def gumbel_sample(
    logits: Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    draw_order: tuple[int, ...] | None = None,
) -> Tensor:
    """``argmax(logits/τ + Gumbel noise)`` over the last dim: (..., K) -> (...) long (τ floored at 1e-10).

    ``draw_order``: memory order of the noise (see :func:`uniform_in_order`, ``MASK_DRAW_ORDER``)."""
    noise = uniform_in_order(logits, draw_order, generator)
    gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
    return (logits / max(temperature, 1e-10) + gumbel).argmax(dim=-1)


def categorical_sample(logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """One draw from ``softmax(logits/τ)`` over the last dim: (..., K) -> (...) long.

    τ = 0 means greedy argmax (the reference divides by zero there and gets NaN probabilities).
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    # torch.distributions.Categorical renormalises before drawing (the reference samples through it).
    probs = probs / probs.sum(dim=-1, keepdim=True)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, replacement=True, generator=generator).view(probs.shape[:-1])


def _check_lengths(m_lens: Tensor, max_tokens: int) -> None:
    if m_lens.ndim != 1 or m_lens.numel() == 0:
        raise ValueError(f"m_lens must be a non-empty 1-D tensor of token lengths, got shape {tuple(m_lens.shape)}")
    bad = [int(v) for v in m_lens.tolist() if not 1 <= v <= max_tokens]
    if bad:
        raise ValueError(
            f"motion lengths {bad} (in tokens) are out of range: each must be 1..{max_tokens} tokens, i.e. "
            f"4..{4 * max_tokens} frames in steps of 4 (a length of 0 or above {4 * max_tokens} frames is invalid)"
        )


def _check_cond(cond: Tensor, batch: int, dim: int) -> None:
    if cond.shape != (batch, dim):
        raise ValueError(
            f"condition vectors have shape {tuple(cond.shape)}, expected ({batch}, {dim}) "
            "(one text-encoder vector per prompt, width = the model's clip_dim)"
        )


def _sample(filtered: Tensor, temperature: float, gsample: bool, generator: torch.Generator | None) -> Tensor:
    if gsample:
        return gumbel_sample(filtered, temperature, generator, MASK_DRAW_ORDER)
    return categorical_sample(filtered, temperature, generator)


def _distinct_rows(forward: Callable[[Tensor | slice], Tensor], ids: Tensor, cond: Tensor) -> Tensor:
    """``forward(rows)`` for the batch's distinct (ids, cond) rows only, spread back over the batch: (B, ...).

    ids: (B, n) long; cond: (B, clip_dim). Rows that repeat cost one forward: a prompt sampled several times
    (the multimodality pass, several seeds of a caption) is the same input at the first step, where every token
    is masked."""
    # On the CPU, where every torch build has a row-wise unique (MPS lacks one); ids < 2^24: exact in float32.
    key = torch.cat([ids.float(), cond.float()], dim=1).cpu()
    distinct, back = torch.unique(key, dim=0, return_inverse=True)
    if len(distinct) == len(ids):
        return forward(slice(None))
    first = torch.empty(len(distinct), dtype=torch.long)
    first.scatter_(0, back, torch.arange(len(ids)))  # one row standing for each distinct one
    return forward(first.to(ids.device))[back.to(ids.device)]


def _remask_loop(
    model: MaskTransformer,
    ids: Tensor,
    scores: Tensor,
    counts_at: Callable[[Tensor], Tensor],
    freeze: Tensor | None,
    cond: Tensor,
    padding_mask: Tensor,
    *,
    timesteps: int,
    cond_scale: float,
    temperature: float,
    topk_filter_thres: float,
    gsample: bool,
    force_mask: bool,
    generator: torch.Generator | None,
    batched_cfg: bool,
    logits_hook: BaseLogitsHook | None = None,
) -> Tensor:
    """Iterative confidence-based re-masking shared by generation and editing; returns ids (B, n)."""
    for step, t in enumerate(torch.linspace(0, 1, timesteps, device=ids.device)):
        num_masked = counts_at(t)  # (B,) float
        ranks = scores.argsort(dim=1).argsort(dim=1)
        is_mask = ranks < num_masked[:, None]
        ids = torch.where(is_mask, model.mask_id, ids)

        def guided(rows: Tensor | slice) -> Tensor:
            return model.forward_with_cond_scale(
                ids[rows], cond[rows], padding_mask[rows], cond_scale, force_mask=force_mask, batched=batched_cfg
            )

        # Repeated prompts are one input at the first step only (later their draws differ): the row check, a
        # copy to the host, is not repeated on every step of the hot loop.
        logits = (_distinct_rows(guided, ids, cond) if step == 0 else guided(slice(None))).transpose(1, 2)
        if logits_hook is not None:
            logits = logits_hook(ids, logits, is_mask)
        pred = _sample(top_k_filter(logits, topk_filter_thres), temperature, gsample, generator)
        ids = torch.where(is_mask, pred, ids)
        scores = logits.softmax(dim=-1).gather(2, pred[..., None]).squeeze(-1)
        # Tokens not re-predicted at this step get a frozen score and are never masked again (mask-free editing
        # instead freezes only outside its editable region).
        scores = scores.masked_fill(~(is_mask if freeze is None else freeze), FROZEN_SCORE)
    return torch.where(padding_mask, -1, ids)


@torch.no_grad()
def generate_base_tokens(
    model: MaskTransformer,
    cond: Tensor,
    m_lens: Tensor,
    *,
    timesteps: int = 18,
    cond_scale: float = 4.0,
    temperature: float = 1.0,
    topk_filter_thres: float = 0.9,
    gsample: bool = False,
    force_mask: bool = False,
    generator: torch.Generator | None = None,
    max_tokens: int = 49,
    batched_cfg: bool = True,
    logits_hook: BaseLogitsHook | None = None,
) -> Tensor:
    """Masked-transformer generation (docs/sampling.md#masked-generation): layer-0 ids (B, n = max(m_lens)), −1 at padding.

    cond: (B, clip_dim) text vectors; m_lens: (B,) lengths in tokens (frames // 4), each in 1..max_tokens.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    device = next(model.parameters()).device
    m_lens = torch.as_tensor(m_lens, device=device).long()
    _check_lengths(m_lens, max_tokens)
    _check_cond(cond, m_lens.shape[0], model.config.clip_dim)
    n = int(m_lens.max())
    padding_mask = ~(torch.arange(n, device=device)[None, :] < m_lens[:, None])
    ids = torch.where(padding_mask, model.pad_id, model.mask_id)
    scores = torch.where(padding_mask, FROZEN_SCORE, 0.0)
    return _remask_loop(
        model,
        ids,
        scores,
        lambda t: torch.round(cosine_schedule(t) * m_lens).clamp(min=1),
        None,
        cond.to(device),
        padding_mask,
        timesteps=timesteps,
        cond_scale=cond_scale,
        temperature=temperature,
        topk_filter_thres=topk_filter_thres,
        gsample=gsample,
        force_mask=force_mask,
        generator=generator,
        batched_cfg=batched_cfg,
        logits_hook=logits_hook,
    )


@torch.no_grad()
def edit_base_tokens(
    model: MaskTransformer,
    tokens: Tensor,
    cond: Tensor,
    m_lens: Tensor,
    edit_mask: Tensor | None = None,
    *,
    timesteps: int = 18,
    cond_scale: float = 4.0,
    temperature: float = 1.0,
    topk_filter_thres: float = 0.9,
    gsample: bool = False,
    force_mask: bool = False,
    generator: torch.Generator | None = None,
    max_tokens: int = 49,
    batched_cfg: bool = True,
    logits_hook: BaseLogitsHook | None = None,
) -> Tensor:
    """Temporal inpainting of layer-0 tokens (docs/sampling.md#editing): ids (B, n), −1 at padding.

    tokens: (B, n) source codes; m_lens: (B,) lengths in tokens; edit_mask: (B, n) bool, True = regenerate
    (restricted to non-padding). With a mask, tokens outside it are kept exactly and the masked span is
    regenerated on the cosine schedule. ``edit_mask=None`` is the mask-free mode: every step re-masks the
    ``round(0.16·L)`` least confident of all valid tokens.
    """
    device = next(model.parameters()).device
    tokens = tokens.to(device).long()
    m_lens = torch.as_tensor(m_lens, device=device).long()
    _check_lengths(m_lens, max(max_tokens, tokens.shape[1]))
    _check_cond(cond, tokens.shape[0], model.config.clip_dim)
    if m_lens.shape[0] != tokens.shape[0]:
        raise ValueError(f"{tokens.shape[0]} token rows but {m_lens.shape[0]} lengths")
    n = tokens.shape[1]
    padding_mask = ~(torch.arange(n, device=device)[None, :] < m_lens[:, None])
    if edit_mask is None:
        editable = ~padding_mask
        ids = torch.where(padding_mask, model.pad_id, tokens)
        ratio = MASK_FREE_RATIO
        freeze = editable
    else:
        if edit_mask.shape != tokens.shape:
            raise ValueError(f"edit_mask has shape {tuple(edit_mask.shape)}, tokens {tuple(tokens.shape)}")
        editable = edit_mask.to(device).bool() & ~padding_mask
        empty = (~editable.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"edit mask selects no token inside the motion for sample(s) {empty}")
        # Padded positions keep their encoded tokens (not pad_id): attention ignores them (reference behaviour).
        ids = torch.where(editable, model.mask_id, tokens)
        ratio = None
        freeze = None
    edit_len = editable.sum(dim=1)
    scores = torch.where(editable, 0.0, FROZEN_SCORE)

    def counts_at(t: Tensor) -> Tensor:
        p = cosine_schedule(t) if ratio is None else torch.full_like(t, ratio)
        return torch.round(p * edit_len).clamp(min=1)

    return _remask_loop(
        model,
        ids,
        scores,
        counts_at,
        freeze,
        cond.to(device),
        padding_mask,
        timesteps=timesteps,
        cond_scale=cond_scale,
        temperature=temperature,
        topk_filter_thres=topk_filter_thres,
        gsample=gsample,
        force_mask=force_mask,
        generator=generator,
        batched_cfg=batched_cfg,
        logits_hook=logits_hook,
    )


@torch.no_grad()
def generate_residual_tokens(
    model: ResidualTransformer,
    base_ids: Tensor,
    cond: Tensor,
    m_lens: Tensor,
    *,
    temperature: float = 1.0,
    topk_filter_thres: float = 0.9,
    cond_scale: float = 2.0,
    num_res_layers: int = -1,
    generator: torch.Generator | None = None,
    batched_cfg: bool = True,
    logits_hook: ResidualLogitsHook | None = None,
) -> Tensor:
    """Residual-layer generation (docs/sampling.md#residual-generation): all ids (B, n, Q') with Q' = Q or num_res_layers + 1.

    base_ids: (B, n) layer-0 ids (−1 at padding allowed); m_lens: (B,) in tokens. Always Gumbel-max sampling.
    QUIRK(reference): a sampled pad class at a valid position becomes −1 (that layer's code is dropped there);
    kept to match the official numbers.
    """
    device = next(model.parameters()).device
    base_ids = base_ids.to(device).long()
    b, n = base_ids.shape
    m_lens = torch.as_tensor(m_lens, device=device).long()
    _check_lengths(m_lens, n)
    _check_cond(cond, b, model.config.clip_dim)
    cond = cond.to(device)
    num_layers = model.num_quantizers if num_res_layers == -1 else num_res_layers + 1
    if not 1 <= num_layers <= model.num_quantizers:
        raise ValueError(f"num_res_layers must be -1 or 0..{model.num_quantizers - 1}, got {num_res_layers}")
    padding_mask = ~(torch.arange(n, device=device)[None, :] < m_lens[:, None])
    bad = (~padding_mask) & ((base_ids < 0) | (base_ids >= model.num_tokens))
    if bool(bad.any()):
        raise ValueError(
            f"base_ids hold {int(bad.sum())} value(s) outside [0, {model.num_tokens}) inside the "
            "motion lengths (only padding may be −1): base tokens and lengths disagree"
        )
    ids = torch.where(padding_mask, model.pad_id, base_ids)
    table = model.token_embeddings()
    all_ids = [ids]
    history = torch.zeros(b, n, table.shape[-1], device=device, dtype=table.dtype)
    for layer in range(1, num_layers):
        history = history + table[layer - 1][ids]
        logits = model.forward_with_cond_scale(
            history, layer, cond, padding_mask, cond_scale, batched=batched_cfg
        ).transpose(1, 2)  # (B, n, K+1)
        if logits_hook is not None:
            logits = logits_hook(layer, torch.stack(all_ids, dim=-1), logits)
        pred = gumbel_sample(top_k_filter(logits, topk_filter_thres), temperature, generator, RES_DRAW_ORDER)
        ids = torch.where(padding_mask, model.pad_id, pred)
        all_ids.append(ids)
    out = torch.stack(all_ids, dim=-1)
    return torch.where(out == model.pad_id, -1, out)

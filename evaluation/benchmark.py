"""The benchmark loop (docs/evaluation.md#protocols): one function for VQ reconstruction, M-transformer and M+R generation.

``evaluate_t2m`` runs ``repeats`` passes over an evaluation loader. Per pass: ground-truth embeddings are
computed once per batch (the dataset draws a fresh caption, coin and crop every pass), the first ``mm_batches``
batches are generated ``mm_repeats`` times with ``is_mm=True`` (the reference samples them with Gumbel noise)
for multimodality and the last of those generations also counts for FID/R-precision; every other batch is
generated once with ``is_mm=False``. Metrics are reported as mean and 95 % half-width over the passes.

Throughput: a :data:`GenerateFn` receives the number of generations wanted and returns them all from one call
(``pipeline_generator`` runs the transformers on length-sorted chunks, so short motions are not padded to the
longest one, and caches text encodings across passes). Each generation is an independent draw, as in the reference's
one-call-per-generation loop, so the metrics' distribution is the reference's; the random numbers land on
other samples, so individual values differ.

Feature spaces: the loader's motions are normalised with the evaluator's statistics; ``generate`` returns
**raw (de-normalised) features**, i.e. the generator de-normalises with its model's statistics and this loop
re-normalises with the evaluator's (the official files have identical statistics, so this is exact up to
rounding).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from evaluation.physical import TABLE_COLUMNS, PhysicalAccumulator
from models.evaluator.word_vectorizer import WordVectorizer
from models.evaluator.wrapper import T2MEvaluator
from utils import metrics as M
from utils.checkpoint import atomic_write, find_checkpoint, list_checkpoints
from utils.skeleton import DatasetSpec

if TYPE_CHECKING:
    from models.pipeline import MoMaskPipeline, Sampling
    from options.eval import BenchmarkOptions

logger = logging.getLogger(__name__)


@dataclass
class EvalBatch:
    """One collated evaluation batch (layout of the reference ``Text2MotionDatasetEval``)."""

    word_embs: Tensor  # (B, L+2, 300)
    pos_onehot: Tensor  # (B, L+2, 15)
    captions: list[str]
    sent_lens: Tensor  # (B,)
    motions: Tensor  # (B, T, D) normalised with the evaluator statistics, zero padded
    m_lens: Tensor  # (B,) frames, multiples of 4
    tokens: list[str]

    @classmethod
    def from_loader(cls, batch: Sequence) -> EvalBatch:
        """From the loader's 7-tuple ``(word_embs, pos_onehot, caption, sent_len, motion, length, tokens)``."""
        if isinstance(batch, EvalBatch):
            return batch
        if len(batch) != 7:
            raise ValueError(
                f"evaluation batches must be 7-tuples (word_embs, pos_onehot, caption, sent_len, "
                f"motion, length, tokens), got {len(batch)} items"
            )
        w, p, cap, sl, mot, ml, tok = batch
        return cls(w, p, list(cap), torch.as_tensor(sl), mot, torch.as_tensor(ml), list(tok))

    def __len__(self) -> int:
        return len(self.captions)


# (batch, is_mm, repeats R) -> (raw features (R·B, T, D), lengths (R·B,) in frames); row r·B + i is generation r
# of item i (deterministic generators such as reconstruction return the same rows R times)
GenerateFn = Callable[[EvalBatch, bool, int], tuple[Tensor, Tensor]]
# raw features (T, D) of one sample -> joints (T, J, 3); enables MPJPE (VQ reconstruction)
JointsFn = Callable[[Tensor], Tensor]

REPORT_ORDER = (
    "FID",
    "Diversity",
    "TOP1",
    "TOP2",
    "TOP3",
    "Matching",
    "Multimodality",
    "MPJPE",
    "Diversity_real",
    "TOP1_real",
    "TOP2_real",
    "TOP3_real",
    "Matching_real",
)


@dataclass
class Metrics:
    """Per-pass values of every metric; ``summary()`` gives mean and 95 % half-width."""

    per_repeat: dict[str, list[float]] = field(default_factory=dict)
    label: str = ""

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.per_repeat.setdefault(key, []).append(float(value))

    def mean(self, name: str) -> float:
        return M.mean_and_ci95(self.per_repeat[name])[0]

    def ci(self, name: str) -> float:
        return M.mean_and_ci95(self.per_repeat[name])[1]

    def summary(self) -> dict[str, tuple[float, float]]:
        names = [n for n in REPORT_ORDER if n in self.per_repeat]
        names += [n for n in self.per_repeat if n not in names]
        return {n: M.mean_and_ci95(self.per_repeat[n]) for n in names}

    def __str__(self) -> str:
        head = f"[{self.label}] " if self.label else ""
        return head + ", ".join(f"{n} {m:.4f}±{c:.4f}" for n, (m, c) in self.summary().items())


def _generated_embeddings(
    generate: GenerateFn, batch: EvalBatch, evaluator: T2MEvaluator, is_mm: bool, repeats: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """-> (motion embeddings (R·B, 512), raw generated features (R·B, T, D), their lengths (R·B,))."""
    motions, lens = generate(batch, is_mm, repeats)
    if motions.shape[0] != repeats * len(batch):
        raise ValueError(
            f"generate returned {motions.shape[0]} motions for {repeats} generation(s) of a batch of {len(batch)}"
        )
    emb = evaluator.get_motion_embeddings(evaluator.normalize(motions.to(evaluator.mean.device)), lens)
    return emb, motions, lens


def _mpjpe_sums(batch: EvalBatch, raw_pred: Tensor, evaluator: T2MEvaluator, joints_fn: JointsFn) -> tuple[float, int]:
    """Summed per-pose MPJPE over the batch at the ground-truth lengths, and the pose count."""
    raw_gt = evaluator.denormalize(batch.motions.to(raw_pred.device, torch.float32))
    total, poses = 0.0, 0
    for i, length in enumerate(batch.m_lens.tolist()):
        gt = joints_fn(raw_gt[i, :length]).detach().cpu().numpy()
        pred = joints_fn(raw_pred[i, :length].float()).detach().cpu().numpy()
        total += float(M.mpjpe_per_pose(gt, pred).sum())
        poses += gt.shape[0]
    return total, poses


def evaluate_once(
    loader: Iterable,
    generate: GenerateFn,
    evaluator: T2MEvaluator,
    rng: np.random.Generator,
    *,
    mm_batches: int = 3,
    mm_repeats: int = 30,
    joints_fn: JointsFn | None = None,
    diversity_times: int | None = None,
    progress: bool = True,
    physical: DatasetSpec | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` -> metric values (see module docstring); ``physical``: the dataset, to add the
    physical columns of :mod:`evaluation.physical`."""
    accumulator = PhysicalAccumulator(physical) if physical is not None else None
    gt_embs, pred_embs, mm_embs = [], [], []
    hits_real, hits_pred = np.zeros(3, np.int64), np.zeros(3, np.int64)
    match_real = match_pred = mpjpe_total = 0.0
    num, poses = 0, 0
    for i, raw in enumerate(tqdm(loader, desc="eval", leave=False, disable=not progress)):
        batch = EvalBatch.from_loader(raw)
        if i < mm_batches:
            emb, pred, lens = _generated_embeddings(generate, batch, evaluator, True, mm_repeats)
            mm_embs.append(emb.view(mm_repeats, len(batch), -1).transpose(0, 1).cpu().numpy())  # (B, R, 512)
            # the last generation also counts for FID / R-precision
            em_pred, pred, pred_lens = emb[-len(batch) :], pred[-len(batch) :], lens[-len(batch) :]
        else:
            em_pred, pred, pred_lens = _generated_embeddings(generate, batch, evaluator, False)
        if accumulator is not None:
            raw_gt = evaluator.denormalize(batch.motions.to(evaluator.mean.device, torch.float32))
            accumulator.add(raw_gt, batch.m_lens, pred, torch.as_tensor(pred_lens))
        et, em = evaluator.get_co_embeddings(
            batch.word_embs, batch.pos_onehot, batch.sent_lens, batch.motions, batch.m_lens
        )
        et, em, em_pred = (x.cpu().numpy().astype(np.float64) for x in (et, em, em_pred))
        gt_embs.append(em)
        pred_embs.append(em_pred)
        hits_real += M.r_precision_hits(et, em)
        hits_pred += M.r_precision_hits(et, em_pred)
        match_real += M.matching_score_sum(et, em)
        match_pred += M.matching_score_sum(et, em_pred)
        num += len(batch)
        if joints_fn is not None:
            total, count = _mpjpe_sums(batch, pred, evaluator, joints_fn)
            mpjpe_total += total
            poses += count
    if num == 0:
        raise ValueError(
            "the evaluation loader yielded no batches (is the split smaller than one batch with drop_last?)"
        )
    gt_all, pred_all = np.concatenate(gt_embs), np.concatenate(pred_embs)
    out = {
        "FID": M.fid(gt_all, pred_all),
        "Diversity_real": M.diversity(gt_all, rng, diversity_times),
        "Diversity": M.diversity(pred_all, rng, diversity_times),
        "Matching_real": match_real / num,
        "Matching": match_pred / num,
    }
    for k in range(3):
        out[f"TOP{k + 1}_real"] = hits_real[k] / num
        out[f"TOP{k + 1}"] = hits_pred[k] / num
    if mm_embs:
        out["Multimodality"] = M.multimodality(np.concatenate(mm_embs).astype(np.float64), rng)
    if joints_fn is not None:
        out["MPJPE"] = mpjpe_total / poses
    if accumulator is not None:
        out.update(accumulator.values())
    return out


def evaluate_t2m(
    loader: Iterable,
    generate: GenerateFn,
    evaluator: T2MEvaluator,
    *,
    repeats: int = 20,
    mm_batches: int = 3,
    mm_repeats: int = 30,
    rng: np.random.Generator | None = None,
    joints_fn: JointsFn | None = None,
    diversity_times: int | None = None,
    label: str = "",
    progress: bool = True,
    physical: DatasetSpec | None = None,
) -> Metrics:
    """Benchmark ``generate`` against the evaluator: ``repeats`` passes -> :class:`Metrics`.

    ``mm_batches=0`` disables multimodality (unconditional generation); ``joints_fn`` adds MPJPE;
    ``diversity_times`` overrides the 300/100 pair count (tiny test sets only); ``physical`` (the dataset) adds
    the physical columns (penetration, floating, skating, jitter) for the model and the ground truth.
    """
    rng = np.random.default_rng(10107) if rng is None else rng
    result = Metrics(label=label)
    for r in range(repeats):
        values = evaluate_once(
            loader,
            generate,
            evaluator,
            rng,
            mm_batches=mm_batches,
            mm_repeats=mm_repeats,
            joints_fn=joints_fn,
            diversity_times=diversity_times,
            progress=progress,
            physical=physical,
        )
        result.add(values)
        logger.info("repeat %d/%d: %s", r + 1, repeats, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return result


def reconstruction_generator(
    reconstruct: Callable[[Tensor], Tensor], evaluator: T2MEvaluator, model_mean: Tensor, model_std: Tensor
) -> GenerateFn:
    """A :data:`GenerateFn` for autoencoders: GT (evaluator space) -> model space -> ``reconstruct`` -> raw.

    ``reconstruct``: (B, T, D) model-normalised -> (B, T, D) model-normalised.
    """

    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1) -> tuple[Tensor, Tensor]:
        raw = evaluator.denormalize(batch.motions.to(evaluator.mean.device, torch.float32))
        mean, std = model_mean.to(raw), model_std.to(raw)
        with torch.no_grad():
            out = reconstruct((raw - mean) / std)
        return (out * std + mean).repeat(repeats, 1, 1), batch.m_lens.repeat(repeats)

    return generate


def pipeline_generator(
    pipe: MoMaskPipeline,
    sampling: Sampling,
    *,
    use_estimated_length: bool = False,
    generator: torch.Generator | None = None,
    chunk: int = 64,
) -> GenerateFn:
    """A :data:`GenerateFn` for MoMask (masked + optional residual transformer, VQ decoder).

    Reference protocol (docs/evaluation.md#protocols): Gumbel sampling only in the multimodality batches (when
    ``sampling.gumbel_sample``), categorical elsewhere; lengths = the ground-truth ``m_lens`` unless
    ``use_estimated_length`` (then the pipeline's length estimator samples them). All ``R·B`` generations of a
    call run as chunks of ``chunk`` samples of similar length (sorted by token length): attention ignores
    padding, so a sample's distribution does not depend on its chunk, and short motions cost what they need.
    Settings left at −1 are the run's own (:meth:`MoMaskPipeline.resolve`: its sampling.json's decoding margin,
    with which motions are generated and cut, and guidance); official runs have none, so they are sampled and
    decoded as the official protocol does.
    """
    unit = pipe.spec.unit_length
    margin = pipe.resolve(sampling).margin
    vectors: dict[str, Tensor] = {}  # text encodings, kept across passes (captions recur every pass)

    def encode(captions: list[str]) -> Tensor:
        missing = sorted({c for c in captions if c not in vectors})
        if missing:
            vectors.update(zip(missing, pipe.encode_text(missing)))
        return torch.stack([vectors[c] for c in captions])

    @torch.no_grad()
    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1) -> tuple[Tensor, Tensor]:
        s = dataclasses.replace(sampling, gumbel_sample=sampling.gumbel_sample and is_mm)
        cond = encode(batch.captions).repeat(repeats, 1)  # (R·B, clip_dim)
        lengths = [None] * len(cond) if use_estimated_length else batch.m_lens.repeat(repeats).tolist()
        tokens, _ = pipe.token_lengths(lengths, cond, generator)  # (R·B,)
        order = torch.argsort(tokens, stable=True)
        n = int(tokens.max())
        ids = torch.empty(
            len(cond), margin + n + margin, pipe.vq.config.num_quantizers, dtype=torch.long, device=tokens.device
        )
        for rows in order.split(chunk):
            part = pipe.generate_codes(cond[rows], tokens[rows], s, generator, margin)  # (c, 2·margin + max, Q)
            ids[rows] = torch.nn.functional.pad(part, (0, 0, 0, ids.shape[1] - part.shape[1]), value=-1)
        # One decode at the longest length, as a single-call generation would decode (−1 codes add nothing).
        return pipe.decode_features(ids, margin), tokens * unit

    return generate


def make_eval_loader(
    data_root: str | Path,
    spec: DatasetSpec,
    evaluator: T2MEvaluator,
    vectorizer: WordVectorizer,
    *,
    split: str = "test",
    batch_size: int = 32,
    num_workers: int = 0,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """The benchmark loader: evaluation dataset normalised with the evaluator's statistics, shuffled, drop_last,
    batches sorted by sentence length."""
    from torch.utils.data import DataLoader

    from data.t2m_dataset import Text2MotionDatasetEval, collate_by_sent_len

    dataset = Text2MotionDatasetEval(
        data_root,
        spec,
        evaluator.mean.cpu().numpy(),
        evaluator.std.cpu().numpy(),
        vectorizer,
        split=split,
        seed=seed,
        max_text_len=evaluator.max_text_len,
    )
    if len(dataset) < batch_size:
        raise ValueError(f"the {split} split has {len(dataset)} usable items, fewer than one batch of {batch_size}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=collate_by_sent_len,
    )


def matching_checkpoints(model_dir: Path, which: str, stage: str) -> list[str]:
    """Names of the checkpoint files in ``model_dir`` containing ``which`` (reference: ``--which_epoch``); empty
    ``which``: the one file the stage's run is loaded from (utils.checkpoint.find_checkpoint)."""
    if not which:
        return [find_checkpoint(model_dir, stage).name]
    have = list_checkpoints(model_dir)
    files = [name for name in have if which in name]
    if not files:
        raise FileNotFoundError(
            f"no checkpoint in {model_dir} whose name contains {which!r} (it has: {have or 'nothing'})"
        )
    return files


def load_benchmark(opt: BenchmarkOptions, device: torch.device) -> tuple[T2MEvaluator, torch.utils.data.DataLoader]:
    """The evaluator and the benchmark loader named by a benchmark script's options."""
    evaluator = T2MEvaluator.from_checkpoints(opt.evaluator_root, opt.dataset_name, device)
    loader = make_eval_loader(
        opt.data_root,
        opt.spec,
        evaluator,
        WordVectorizer(opt.glove_path),
        split=opt.split,
        batch_size=opt.batch_size,
        num_workers=opt.num_workers,
        seed=opt.seed,
    )
    return evaluator, loader


@dataclass
class EvalLog:
    """The reference ``eval/<ext>.log``: one block per evaluated checkpoint, rewritten atomically after each."""

    path: Path
    results: dict[str, Metrics] = field(default_factory=dict)
    text: str = ""

    def add(self, file: str, metrics: Metrics, header: str | None = None) -> None:
        block = format_official_log(header or file, metrics)
        self.results[file] = metrics
        self.text += block
        with atomic_write(self.path) as tmp:
            tmp.write_text(self.text)
        logger.info("%s", block.rstrip())


# ---- reporting ------------------------------------------------------------------------------------------------
def format_official_log(header: str, metrics: Metrics) -> str:
    """The reference ``eval/<ext>.log`` block for one checkpoint (3 decimals, tab-indented)."""
    s = metrics.summary()

    def pair(name: str, sep: str = " ") -> str:
        mean, ci = s[name]
        return f"{mean:.3f}, conf.{sep}{ci:.3f}"

    lines = [
        f"{header} final result:",
        f"\tFID: {pair('FID')}",
        f"\tDiversity: {pair('Diversity')}",
        f"\tTOP1: {pair('TOP1')}, TOP2. {pair('TOP2')}, TOP3. {pair('TOP3')}",
        f"\tMatching: {pair('Matching')}",
    ]
    if "Multimodality" in s:
        lines.append(f"\tMultimodality:{pair('Multimodality', sep='')}")
    if "MPJPE" in s:
        lines.append(f"\tMAE:{pair('MPJPE', sep='')}")
    return "\n".join(lines) + "\n\n"


def format_table(rows: dict[str, Metrics], include_real: bool = True) -> str:
    """Paper-style Markdown table (Top-1/2/3, FID, MM-Dist, Diversity, MModality) with ± 95 % half-widths."""
    cols = [
        ("TOP1", "Top-1 ↑"),
        ("TOP2", "Top-2 ↑"),
        ("TOP3", "Top-3 ↑"),
        ("FID", "FID ↓"),
        ("Matching", "MM-Dist ↓"),
        ("Diversity", "Diversity →"),
        ("Multimodality", "MModality ↑"),
        ("MPJPE", "MPJPE ↓"),
        *TABLE_COLUMNS,
    ]
    present = [c for c in cols if any(c[0] in m.per_repeat for m in rows.values())]

    def cell(m: Metrics, key: str) -> str:
        if key not in m.per_repeat:
            return "-"
        mean, ci = m.summary()[key]
        return f"{mean:.3f}±{ci:.3f}"

    lines = ["| Method | " + " | ".join(t for _, t in present) + " |", "|---|" + "---|" * len(present)]
    if include_real and rows:
        first = next(iter(rows.values()))
        real = Metrics({k[:-5]: v for k, v in first.per_repeat.items() if k.endswith("_real")})
        lines.append("| Real motion | " + " | ".join(cell(real, k) for k, _ in present) + " |")
    for name, m in rows.items():
        label = f"{name} ({m.label})" if m.label else name
        lines.append(f"| {label} | " + " | ".join(cell(m, k) for k, _ in present) + " |")
    return "\n".join(lines)

"""Text -> motion with the three MoMask stages, loaded once and usable from a notebook.

    pipe = MoMaskPipeline.from_checkpoints("./checkpoints", "t2m", "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns")
    motions = pipe.generate(["a person walks forward"], lengths=[120], seed=1)
    motions[0].joints   # (120, 22, 3) metres, Y up

One text encoder serves the length estimator and both transformers (the official code loads CLIP twice and
encodes every caption twice). Sampling follows docs/sampling.md#masked-generation/docs/sampling.md#residual-generation; what differs from the official scripts is fixed
on purpose and marked in the docstrings (lengths never 0 tokens, editing keeps every frame outside its spans exactly).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from data.text import read_text_file
from models.control.optimise import Control, Controller, fit_lengths, generate_controlled, per_sample
from models.editing import CROSSFADE_FRAMES, EditSpans, blend, blend_keeping_steps
from models.length_estimator import LengthEstimator, build_length_estimator, estimate_lengths
from models.text.vector_cache import encode_with_cache
from models.text_encoder import TextEncoder, build_text_encoder
from models.transformer.build import (
    RunSampling,
    load_mask_transformer,
    load_residual_transformer,
    load_run_sampling,
)
from models.transformer.mask_transformer import MaskTransformer
from models.transformer.precision import int8_copy
from models.transformer.residual_transformer import ResidualTransformer
from models.transformer.sampling import (
    BaseLogitsHook,
    ResidualLogitsHook,
    edit_base_tokens,
    generate_base_tokens,
    generate_residual_tokens,
)
from models.vq.build import load_rvqvae, load_vq_meta
from models.vq.model import RVQVAE
from options.sampling import MAX_MARGIN, SamplingOptions
from utils.checkpoint import FINEST, CheckpointError, load_checkpoint
from utils.cleanup import cleanup_with_features
from utils.motion import check_features, recover_from_ric
from utils.precision import PRECISIONS, check_precision
from utils.skeleton import DatasetSpec, get_dataset_spec

logger = logging.getLogger(__name__)

TRANSITION_TOKENS = 4  # tokens re-generated around each boundary of a chained long motion (0.8 s at 20 fps)
EDIT_REFINE_ROUNDS = 3  # controlled edits: refinements through ever wider crossfades before the error is what it is
REPO = Path(__file__).resolve().parents[1]
UNFAMILIAR_SIMILARITY = 0.5  # cosine similarity below which a caption is far from everything a model saw


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. Defaults: the command-line ones (one source, options/sampling.py; the official gen_t2m
    values)."""

    time_steps: int = SamplingOptions.time_steps
    cond_scale: float = SamplingOptions.cond_scale  # -1 = the run's own (sampling.json), else official
    res_cond_scale: float = SamplingOptions.res_cond_scale
    temperature: float = SamplingOptions.temperature
    topkr: float = SamplingOptions.topkr
    gumbel_sample: bool = SamplingOptions.gumbel_sample
    force_mask: bool = SamplingOptions.force_mask
    use_res: bool = True
    precision: str = SamplingOptions.precision  # transformer arithmetic: utils/precision.py PRECISIONS
    margin: int = SamplingOptions.margin  # tokens past each end, cut after decoding; -1 = the run's own

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: use one of {PRECISIONS}")
        if not (self.cond_scale >= 0 or self.cond_scale == -1):
            raise ValueError(f"cond_scale {self.cond_scale}: use a guidance scale >= 0, or -1 for the run's own")
        if not -1 <= self.margin <= MAX_MARGIN:
            raise ValueError(f"margin {self.margin}: use 0..{MAX_MARGIN} tokens, or -1 for the run's own")

    @classmethod
    def from_options(cls, opt: object) -> Sampling:
        """From any options object with the official sampling flag names (``use_res_model`` -> ``use_res``)."""
        names = (
            "time_steps",
            "cond_scale",
            "res_cond_scale",
            "temperature",
            "topkr",
            "gumbel_sample",
            "force_mask",
            "precision",
            "margin",
        )
        values = {n: getattr(opt, n) for n in names if hasattr(opt, n)}
        if hasattr(opt, "use_res_model"):
            values["use_res"] = opt.use_res_model
        return cls(**values)


@dataclass
class Motion:
    """One generated motion. features: (L, D) de-normalised; joints: (L, J, 3); tokens: (L/4, Q), −1 = absent
    (with a decoding margin, the codes of the frames kept: the decoder also saw the margin's codes)."""

    caption: str
    features: np.ndarray
    joints: np.ndarray
    tokens: np.ndarray
    length_estimated: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)  # edited frame spans, for edits
    control_error: float | None = None  # mean distance (m) of controlled joints to their targets, when controlled

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def _run_dir(checkpoints_dir: Path, dataset_name: str, name: str) -> Path:
    path = checkpoints_dir / dataset_name / name
    if not (path / "opt.txt").is_file():
        have = sorted(p.name for p in path.parent.iterdir() if p.is_dir()) if path.parent.is_dir() else []
        raise FileNotFoundError(
            f"run folder {path} (with opt.txt) not found; {path.parent} has: "
            f"{have or 'nothing'} (see README: downloading the released checkpoints)"
        )
    return path


class MoMaskPipeline:
    """VQ + masked transformer + residual transformer (+ length estimator) + one shared text encoder."""

    # The embedded demo model (official layout under its own checkpoints root) and the captions it was trained on.
    DEMO_CHECKPOINTS = REPO / "checkpoints" / "demo"
    DEMO_NAMES = ("mtrans_demo", "rtrans_demo")
    DEMO_DATASET = REPO / "dataset_demo" / "HumanML3D"
    DEMO_VECTORS = DEMO_CHECKPOINTS / "t2m" / "caption_vectors.npz"  # prepare/demo_caption_vectors.py

    def __init__(
        self,
        *,
        vq: RVQVAE,
        mask: MaskTransformer,
        res: ResidualTransformer | None,
        text_encoder: TextEncoder,
        mean: np.ndarray,
        std: np.ndarray,
        spec: DatasetSpec,
        length_estimator: LengthEstimator | None = None,
        device: torch.device | str = "cpu",
        known_captions: Sequence[str] = (),
        run_sampling: RunSampling = RunSampling(),
    ) -> None:
        self.device = torch.device(device)
        self.run_sampling = run_sampling  # what Sampling's -1 settings mean: the masked run's sampling.json
        self.vq = vq.to(self.device).eval()
        self.mask = mask.to(self.device).eval()
        self.res = res.to(self.device).eval() if res is not None else None
        self.length_estimator = length_estimator.to(self.device).eval() if length_estimator is not None else None
        self.text_encoder = text_encoder
        self.spec = spec
        self.known_captions = list(known_captions)
        self._known_vectors: Tensor | None = None  # their unit text vectors, computed on first use
        self._int8: tuple[MaskTransformer, ResidualTransformer | None] | None = None  # made on first use
        self.known_vectors_file: Path | None = None  # a cache of those vectors (models/text/vector_cache.py)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        if text_encoder.dim != mask.config.clip_dim:
            raise CheckpointError(
                f"text encoder {text_encoder.describe()} gives {text_encoder.dim}-d vectors but the "
                f"masked transformer expects {mask.config.clip_dim}-d (wrong --text_encoder?)"
            )
        if length_estimator is not None and length_estimator.input_size != text_encoder.dim:
            raise CheckpointError(
                f"the length estimator takes {length_estimator.input_size}-d text vectors but "
                f"{text_encoder.describe()} gives {text_encoder.dim}-d (trained with another encoder)"
            )
        if self.mean.shape[-1] != spec.dim_pose:
            raise CheckpointError(
                f"VQ meta has {self.mean.shape[-1]} features, dataset {spec.name} has {spec.dim_pose}"
            )

    # ---- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoints(
        cls,
        checkpoints_dir: str | Path,
        dataset_name: str,
        name: str,
        res_name: str = "",
        *,
        device: torch.device | str = "cpu",
        which_epoch: str = "latest",
        text_encoder: str | TextEncoder = "",
        text_encoder_path: str = "",
        use_length_estimator: bool = True,
    ) -> MoMaskPipeline:
        """Load from the official folder layout: ``<checkpoints_dir>/<dataset_name>/{name,res_name,vq_name,
        length_estimator}``; the VQ is the masked transformer's ``vq_name`` and the residual transformer must
        share it. Architecture comes from each run's ``opt.txt`` (or our checkpoints' ``model_args``).

        ``text_encoder``: a name overriding the one in the run's opt.txt, or an already loaded
        :class:`TextEncoder` to share between pipelines."""
        spec = get_dataset_spec(dataset_name)
        root = Path(checkpoints_dir).expanduser().resolve()
        mask_dir = _run_dir(root, spec.name, name)
        run_sampling = load_run_sampling(mask_dir)  # first: a broken sampling.json fails before any weights load
        mask, mask_opt = load_mask_transformer(mask_dir, which=which_epoch, device=device)
        vq_dir = _run_dir(root, spec.name, mask_opt.vq_name)
        vq = load_rvqvae(vq_dir, device=device)
        if mask.num_tokens != vq.config.nb_code:
            raise CheckpointError(
                f"{mask_dir} was trained on {mask.num_tokens} codes but VQ {vq_dir} has {vq.config.nb_code}"
            )
        res = None
        if res_name:
            res_dir = _run_dir(root, spec.name, res_name)
            res, res_opt = load_residual_transformer(res_dir, vq_dir=vq_dir, device=device)
            if res_opt.vq_name != mask_opt.vq_name:
                raise CheckpointError(
                    f"{res_dir} uses VQ {res_opt.vq_name!r} but {mask_dir} uses "
                    f"{mask_opt.vq_name!r}: the two transformers must share one tokenizer"
                )
        if isinstance(text_encoder, TextEncoder):
            encoder = text_encoder
        else:
            encoder = build_text_encoder(
                text_encoder or mask_opt.text_encoder,
                device,
                path=text_encoder_path or mask_opt.text_encoder_path or None,
            )
        estimator = None
        est_file = root / spec.name / "length_estimator" / "model" / FINEST
        if use_length_estimator and est_file.is_file():
            estimator = build_length_estimator(load_checkpoint(est_file), source=str(est_file))
        mean, std = load_vq_meta(vq_dir)
        logger.info(
            "pipeline: VQ %s, masked %s (its sampling: margin %d, guidance %g), residual %s, text encoder %s, "
            "length estimator %s",
            vq_dir.name,
            mask_dir.name,
            run_sampling.margin,
            run_sampling.cond_scale,
            res_name or "none",
            encoder.describe(),
            "yes" if estimator is not None else "no",
        )
        return cls(
            vq=vq,
            mask=mask,
            res=res,
            text_encoder=encoder,
            mean=mean,
            std=std,
            spec=spec,
            length_estimator=estimator,
            device=device,
            run_sampling=run_sampling,
        )

    @classmethod
    def demo(cls, *, device: torch.device | str = "cpu", text_encoder: str | TextEncoder = "") -> MoMaskPipeline:
        """The small model shipped in ``checkpoints/demo`` (trained on ``dataset_demo``; see prepare/train_demo.sh)."""
        if not (cls.DEMO_CHECKPOINTS / "t2m" / cls.DEMO_NAMES[0] / "opt.txt").is_file():
            raise FileNotFoundError(
                f"the embedded demo model is missing from {cls.DEMO_CHECKPOINTS}: rebuild it with "
                "bash prepare/train_demo.sh, or pass --name/--res_name of downloaded checkpoints"
            )
        pipe = cls.from_checkpoints(
            cls.DEMO_CHECKPOINTS, "t2m", *cls.DEMO_NAMES, device=device, text_encoder=text_encoder
        )
        texts = sorted((cls.DEMO_DATASET / "texts").glob("*.txt"))
        pipe.known_captions = sorted({line.caption for t in texts for line in read_text_file(t)})
        pipe.known_vectors_file = cls.DEMO_VECTORS
        return pipe

    def warn_if_unfamiliar(self, captions: Sequence[str]) -> list[str]:
        """Log one warning for captions unlike any the model was trained on (only when those are known)."""
        if not self.known_captions:
            return []
        if self._known_vectors is None:
            asked, known = encode_with_cache(self.text_encoder, captions, self.known_captions, self.known_vectors_file)
            self._known_vectors = torch.nn.functional.normalize(known.to(self.device), dim=-1)
        else:
            asked = self.encode_text(captions)
        known = self._known_vectors
        asked = torch.nn.functional.normalize(asked.to(self.device), dim=-1)
        best = (asked @ known.T).max(dim=1).values
        far = [c for c, s in zip(captions, best.tolist()) if s < UNFAMILIAR_SIMILARITY]
        if far:
            logger.warning(
                "the demo model only knows its ~20 actions (walk, run, jump, kick, ...); %d caption(s) are "
                "unlike any of them and get a best-effort motion: %s",
                len(far),
                far[:3],
            )
        return far

    # ---- pieces ----------------------------------------------------------------------------------------------
    @property
    def max_tokens(self) -> int:
        return self.spec.max_motion_length // self.spec.unit_length

    def _generator(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        gen_device = self.device if self.device.type in ("cpu", "cuda") else torch.device("cpu")
        return torch.Generator(device=gen_device).manual_seed(seed)

    def encode_text(self, captions: Sequence[str]) -> Tensor:
        """(B, clip_dim) condition vectors on the pipeline's device."""
        return self.text_encoder.encode(list(captions)).to(self.device)

    def token_lengths(
        self, lengths: Sequence[int | None], cond: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, list[bool]]:
        """Token lengths (B,): ``frames // 4`` where given, else sampled from the length estimator (1..49)."""
        unit = self.spec.unit_length
        out, estimated = [], []
        for frames in lengths:
            if frames is not None and not unit <= frames <= self.spec.max_motion_length:
                raise ValueError(
                    f"motion length {frames} frames is out of range: use {unit}.."
                    f"{self.spec.max_motion_length} (or leave it out to estimate it)"
                )
            out.append(0 if frames is None else frames // unit)
            estimated.append(frames is None)
        tokens = torch.tensor(out, device=self.device)
        if any(estimated):
            if self.length_estimator is None:
                raise ValueError(
                    "no length given and this checkpoint folder has no length_estimator/model/"
                    "finest.tar: pass --motion_length or a 'caption#frames' prompt file"
                )
            sampled = estimate_lengths(self.length_estimator, cond, generator=generator, max_tokens=self.max_tokens).to(
                self.device
            )
            tokens = torch.where(torch.tensor(estimated, device=self.device), sampled, tokens)
        return tokens, estimated

    def normalise(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std

    def denormalise(self, features: Tensor) -> Tensor:
        return features * self.std + self.mean

    def complete_residuals(
        self,
        base: Tensor,
        cond: Tensor,
        m_lens: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None,
        cond_scale: float | None = None,
        logits_hook: ResidualLogitsHook | None = None,
    ) -> Tensor:
        """(B, n) base ids → (B, n, Q) ids; without a residual transformer the upper layers are −1 (absent)."""
        res = self.transformers(sampling)[1]
        if res is None or not sampling.use_res:
            rest = torch.full(
                (*base.shape, self.vq.config.num_quantizers - 1), -1, dtype=base.dtype, device=base.device
            )
            return torch.cat([base[..., None], rest], dim=-1)
        return generate_residual_tokens(
            res,
            base,
            cond,
            m_lens,
            temperature=1.0,
            topk_filter_thres=sampling.topkr,
            cond_scale=sampling.res_cond_scale if cond_scale is None else cond_scale,
            generator=generator,
            logits_hook=logits_hook,
        )

    def generate_base(
        self,
        cond: Tensor,
        m_lens: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None,
        logits_hook: BaseLogitsHook | None = None,
        max_tokens: int | None = None,
    ) -> Tensor:
        """(B, clip_dim) conditions, (B,) token lengths (at most ``max_tokens``, default the dataset's 49) →
        layer-0 ids (B, n), −1 at padding (docs/sampling.md#masked-generation)."""
        return generate_base_tokens(
            self.transformers(sampling)[0],
            cond,
            m_lens,
            timesteps=sampling.time_steps,
            cond_scale=self.resolve(sampling).cond_scale,
            temperature=sampling.temperature,
            topk_filter_thres=sampling.topkr,
            gsample=sampling.gumbel_sample,
            force_mask=sampling.force_mask,
            generator=generator,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            logits_hook=logits_hook,
        )

    def generate_codes(
        self, cond: Tensor, m_lens: Tensor, sampling: Sampling, generator: torch.Generator | None, margin: int = 0
    ) -> Tensor:
        """(B, clip_dim) conditions, (B,) token lengths → all ids (B, margin + n + margin, Q), −1 = absent: each
        motion generated ``margin`` tokens longer at both ends (:meth:`decode` cuts them off)."""
        m_lens = m_lens + 2 * margin
        with self.autocast(sampling):
            base = self.generate_base(cond, m_lens, sampling, generator, max_tokens=self.max_tokens + 2 * margin)
            return self.complete_residuals(base, cond, m_lens, sampling, generator)

    def resolve(self, sampling: Sampling) -> Sampling:
        """``sampling`` with its −1 settings replaced by the masked run's own (:attr:`run_sampling`, from its
        sampling.json; the official values for runs without one): the decoding margin (tokens past each end of a
        free motion) and the guidance scale ``cond_scale``. Idempotent."""
        run = self.run_sampling
        return replace(
            sampling,
            margin=run.margin if sampling.margin < 0 else sampling.margin,
            cond_scale=run.cond_scale if sampling.cond_scale < 0 else sampling.cond_scale,
        )

    def transformers(self, sampling: Sampling) -> tuple[MaskTransformer, ResidualTransformer | None]:
        """The masked and residual transformers for ``sampling.precision``: the models themselves, or for int8
        their quantised copies (models/transformer/precision.py), made once on first use."""
        if sampling.precision != "int8":
            return self.mask, self.res
        if self._int8 is None:
            check_precision("int8", self.device)
            self._int8 = (int8_copy(self.mask), int8_copy(self.res) if self.res is not None else None)
        return self._int8

    def autocast(self, sampling: Sampling) -> contextlib.AbstractContextManager:
        """bf16 autocast of the transformer passes when ``sampling.precision == "bf16"`` (logits, guidance and
        sampling stay float32); a no-op otherwise. Refuses a precision the device does not offer."""
        check_precision(sampling.precision, self.device)
        if sampling.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def decode_features(self, ids: Tensor, margin: int = 0) -> Tensor:
        """(B, n, Q) ids → de-normalised features (B, 4·(n − 2·margin), D); with a ``margin``, ids from
        :meth:`generate_codes` with that margin, whose ``4·margin`` frames at both ends are cut off (a motion
        then starts where its kept frames do: over the origin, facing +Z)."""
        cut = margin * self.spec.unit_length
        feats = self.denormalise(self.vq.forward_decoder(ids))
        return feats[:, cut : feats.shape[1] - cut]

    @torch.no_grad()
    def decode(self, ids: Tensor, m_lens: Tensor, margin: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """(B, n, Q) ids → per sample (features (4·len, D) de-normalised, joints (4·len, J, 3)), float32, through
        :meth:`decode_features` (``margin``: as there)."""
        return self.split(self.decode_features(ids, margin), m_lens)

    def split(self, feats: Tensor, m_lens: Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """De-normalised features (B, 4n, D) -> per sample (features, joints) cut to its length."""
        out = []
        for b, n in enumerate(m_lens.tolist()):
            f = feats[b, : n * self.spec.unit_length]
            out.append((f.cpu().numpy(), recover_from_ric(f, self.spec.joints_num).cpu().numpy()))
        return out

    @torch.no_grad()
    def encode_motion(self, features: np.ndarray) -> Tensor:
        """De-normalised features (T, D) → codes (1, n, Q); shorter than 196 frames is zero-padded (normalised)."""
        spec = check_features(features, self.spec, name="source motion")
        if spec.name != self.spec.name:
            raise ValueError(
                f"source motion has {spec.dim_pose} features ({spec.name}) but the model is {self.spec.name}"
            )
        x = self.normalise(torch.as_tensor(np.asarray(features), dtype=torch.float32, device=self.device))
        pad = self.spec.max_motion_length - x.shape[0]
        if pad > 0:
            x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
        codes, _ = self.vq.encode(x[None])
        return codes

    # ---- public API ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        texts: Sequence[str],
        lengths: Sequence[int | None] | None = None,
        *,
        seed: int | None = None,
        sampling: Sampling = Sampling(),
        control: Control | Sequence[Control | None] | None = None,
        cleanup: bool = False,
    ) -> list[Motion]:
        """One motion per caption. ``lengths``: frames per caption (``None`` entries are estimated; unlike the
        official estimator use, never 0 tokens). Frames are rounded down to a multiple of 4.

        ``control``: a :class:`models.control.Control` for every caption (or a list, None = free): targets in
        the motion's own frame (Y up, starts over the origin facing +Z) and/or objectives, met by inference-time
        optimisation (models/control/optimise.py); estimated lengths grow to cover the controlled frames.
        Free motions are decoded with ``sampling.margin`` tokens of margin at each end (−1: the run's own,
        docs/sampling.md#decoding-margin); controlled ones with none (a margin > 0 is refused with ``control``).
        Settings left at −1 (margin, ``cond_scale``) are the run's own: :meth:`resolve`.
        ``cleanup``: the joints go through :func:`utils.cleanup.cleanup_motion` (shifted so the frame-0 root is
        over the origin, then pinned back to the control's targets) and the features become those of the
        cleaned joints (:func:`utils.cleanup.cleanup_with_features`): they decode to the returned joints."""
        texts = list(texts)
        lengths = list(lengths) if lengths is not None else [None] * len(texts)
        if len(lengths) != len(texts):
            raise ValueError(f"{len(texts)} captions but {len(lengths)} lengths")
        if control is not None and sampling.margin > 0:
            raise ValueError("a decoding margin applies to free generation only: leave --margin out with --control")
        generator = self._generator(seed)
        cond = self.encode_text(texts)
        m_lens, estimated = self.token_lengths(lengths, cond, generator)
        errors: list[float | None] = [None] * len(texts)
        if control is None:
            margin = self.resolve(sampling).margin
            ids = self.generate_codes(cond, m_lens, sampling, generator, margin)
            decoded = self.decode(ids, m_lens, margin)
            ids = ids[:, margin:]
        else:
            controls = per_sample(control, len(texts))
            m_lens = fit_lengths(controls, m_lens, estimated, self.spec.unit_length, self.max_tokens)
            ids, feats, err = generate_controlled(self, cond, m_lens, sampling, generator, controls)
            decoded = self.split(feats, m_lens)
            errors = [None if math.isnan(e) else e for e in err.tolist()]
        if cleanup:
            targets = [None] * len(texts) if control is None else [None if c is None else c.positions for c in controls]
            decoded = [cleanup_with_features(f, j, self.spec, targets=t) for (f, j), t in zip(decoded, targets)]
            if control is not None:  # report the error of the joints returned, after the clean-up
                errors = [
                    None if c is None or c.targets is None else c.targets.error(j)
                    for c, (_, j) in zip(controls, decoded, strict=True)
                ]
        return [
            Motion(text, f, j, ids[b, : int(m_lens[b])].cpu().numpy(), estimated[b], control_error=errors[b])
            for b, (text, (f, j)) in enumerate(zip(texts, decoded))
        ]

    @torch.no_grad()
    def edit(
        self,
        source_features: np.ndarray,
        text: str,
        spans: Sequence[tuple[int, int]],
        *,
        seed: int | None = None,
        sampling: Sampling = Sampling(res_cond_scale=2.0),
        control: Control | None = None,
        crossfade: int = CROSSFADE_FRAMES,
    ) -> Motion:
        """Temporal inpainting (docs/sampling.md): regenerate the frame ``spans`` (end exclusive) of a source
        motion (T ≤ 196 frames, de-normalised features) from ``text``; every frame outside them is the source's.
        ``control`` (targets inside the spans only) steers the regenerated tokens as in :meth:`generate`.

        The tokens covering each span are regenerated (the rest kept in every layer; the residual transformer
        fills the upper layers only there), decoded, and blended into the source features with a ``crossfade``
        -frame ramp at inner boundaries and the root closed up (models/editing.py). -> Motion of T frames;
        ``spans`` = the frame spans, ``tokens`` = the edited code sequence.
        """
        if sampling.margin > 0:
            raise ValueError("a decoding margin applies to free generation: an edit decodes the source's own frames")
        source = np.asarray(source_features, dtype=np.float32)
        unit, limit = self.spec.unit_length, self.spec.max_motion_length
        if not unit <= source.shape[0] <= limit:
            raise ValueError(
                f"the source motion has {source.shape[0]} frames; editing takes {unit}..{limit} "
                f"(cut it to a {limit}-frame window around the span first)"
            )
        cover = EditSpans.cover(spans, source.shape[0], unit)
        logger.info("editing %s", cover.describe(self.spec.fps))
        generator = self._generator(seed)
        codes = self.encode_motion(source)  # (1, 49, Q)
        n_tok = -(-source.shape[0] // unit)
        m_lens = torch.tensor([n_tok], device=self.device)
        mask = torch.zeros(codes.shape[:2], dtype=torch.bool, device=self.device)
        for start, end in cover.tokens:
            mask[0, start:end] = True
        cond = self.encode_text([text])
        src = torch.as_tensor(source, device=self.device)
        ctl = (
            None
            if control is None
            else Controller(
                self,
                [control.inside(cover.frames)],
                m_lens,
                editable=mask[:, :n_tok],
                time_steps=sampling.time_steps,
                post=self._blend_into(src, cover.frames, crossfade),
            )
        )
        with self.autocast(sampling):
            base = edit_base_tokens(
                self.transformers(sampling)[0],
                codes[..., 0],
                cond,
                m_lens,
                mask,
                timesteps=sampling.time_steps,
                cond_scale=self.resolve(sampling).cond_scale,
                temperature=sampling.temperature,
                topk_filter_thres=sampling.topkr,
                gsample=sampling.gumbel_sample,
                force_mask=sampling.force_mask,
                generator=generator,
                max_tokens=self.max_tokens,
                logits_hook=ctl and ctl.base_hook,
            )
            ids = self.complete_residuals(
                base[:, :n_tok], cond, m_lens, sampling, generator, logits_hook=ctl and ctl.residual_hook
            )
        ids = torch.where(~mask[:, :n_tok, None], codes[:, :n_tok], ids)
        decoded = self.decode_features(ids)
        joints_num = self.spec.joints_num
        features, widths = blend_keeping_steps(src, decoded[0, : src.shape[0]], cover.frames, joints_num, crossfade)
        for _ in range(EDIT_REFINE_ROUNDS if ctl is not None else 0):
            # Refine through the blend with the crossfade widths it uses; a refined motion that needs wider
            # crossfades is refined again through those, so the targets are met on what comes out.
            ctl.post = self._blend_into(src, cover.frames, widths)
            decoded = ctl.refine(ids)
            features, used = blend_keeping_steps(src, decoded[0, : src.shape[0]], cover.frames, joints_num, widths)
            if used == widths:
                break
            widths = used
        joints = recover_from_ric(features, joints_num)
        error = None if ctl is None else float(ctl.errors(joints[None])[0])
        return Motion(
            text,
            features.cpu().numpy(),
            joints.cpu().numpy(),
            ids[0].cpu().numpy(),
            spans=list(cover.frames),
            control_error=error,
        )

    @staticmethod
    def _blend_into(
        source: Tensor, spans: Sequence[tuple[int, int]], widths: int | Sequence[int]
    ) -> Callable[[Tensor], Tensor]:
        """Decoded features (1, 4n, D) -> the same with their first T frames blended into ``source`` (T, D) as
        an edit's output is (models/editing.py); differentiable, for control inside edits."""

        def post(feats: Tensor) -> Tensor:
            mixed = blend(source, feats[0, : source.shape[0]], spans, widths)
            return torch.cat([mixed[None].to(feats.dtype), feats[:, source.shape[0] :]], dim=1)

        return post

    @torch.no_grad()
    def generate_long(
        self,
        texts: Sequence[str],
        lengths: Sequence[int | None] | None = None,
        *,
        seed: int | None = None,
        sampling: Sampling = Sampling(),
        transition_tokens: int = TRANSITION_TOKENS,
    ) -> Motion:
        """One continuous motion through several captions (longer than 196 frames).

        Each caption's segment is generated on its own; then, around every boundary, ``transition_tokens``
        base tokens are re-generated by inpainting a window made of the end of one segment and the start of the
        next, conditioned on the mean of the two captions' vectors (MMM-style long-sequence generation). The
        residual layers are generated per segment; the VQ decoder runs once over the joined codes, so the root
        trajectory continues through the boundaries.
        """
        texts = list(texts)
        if len(texts) < 2:
            raise ValueError("a chained motion needs at least two captions")
        if sampling.margin > 0:
            raise ValueError("a decoding margin applies to single motions: leave --margin out with --chain")
        generator = self._generator(seed)
        cond = self.encode_text(texts)
        lengths = list(lengths) if lengths is not None else [None] * len(texts)
        m_lens, _ = self.token_lengths(lengths, cond, generator)
        half = transition_tokens // 2
        if int(m_lens.min()) < 2 * half + 2:
            raise ValueError(f"chained segments need at least {4 * (2 * half + 2)} frames each")
        with self.autocast(sampling):
            ids = self._chain_codes(cond, m_lens, sampling, generator, half)
        ((features, joints),) = self.decode(ids, torch.tensor([ids.shape[1]], device=self.device))
        return Motion(" / ".join(texts), features, joints, ids[0].cpu().numpy())

    def _chain_codes(
        self, cond: Tensor, m_lens: Tensor, sampling: Sampling, generator: torch.Generator | None, half: int
    ) -> Tensor:
        """Codes (1, Σ m_lens, Q) of the segments joined, ``2·half`` tokens inpainted around each boundary."""
        base = self.generate_base(cond, m_lens, sampling, generator)
        segments = [base[i, : int(m_lens[i])] for i in range(len(m_lens))]
        for i in range(len(segments) - 1):
            left, right = segments[i], segments[i + 1]
            ctx = min(len(left), len(right), self.max_tokens // 2)
            window = torch.cat([left[-ctx:], right[:ctx]])[None]
            mask = torch.zeros_like(window, dtype=torch.bool)
            mask[0, ctx - half : ctx + half] = True
            mixed = cond[i : i + 2].mean(dim=0, keepdim=True)
            new = edit_base_tokens(
                self.transformers(sampling)[0],
                window,
                mixed,
                torch.tensor([2 * ctx], device=self.device),
                mask,
                timesteps=sampling.time_steps,
                cond_scale=self.resolve(sampling).cond_scale,
                temperature=sampling.temperature,
                topk_filter_thres=sampling.topkr,
                gsample=sampling.gumbel_sample,
                generator=generator,
                max_tokens=self.max_tokens,
            )[0]
            segments[i] = torch.cat([left[:-ctx], new[:ctx]])
            segments[i + 1] = torch.cat([new[ctx:], right[ctx:]])
        full = []
        for i, seg in enumerate(segments):
            full.append(
                self.complete_residuals(
                    seg[None], cond[i : i + 1], torch.tensor([len(seg)], device=self.device), sampling, generator
                )[0]
            )
        return torch.cat(full)[None]

"""CLIP ViT-B/32 text tower on HF ``CLIPTextModelWithProjection``, with OpenAI ``encode_text`` numbers.

Weights are read from local files only (docs/quirks.md#modern-dependencies rows 15-16: the official code downloads them at run time):
* a folder written by ``save_pretrained`` (``CLIPModel`` or ``CLIPTextModelWithProjection``), with its tokenizer;
* a Hugging Face hub id already in the local cache (``openai/clip-vit-base-patch32``);
* OpenAI's ``ViT-B-32.pt`` (a TorchScript archive) or a plain ``torch.save`` of an OpenAI-named state dict; its
  text-tower keys are mapped onto HF names and the tokenizer is :class:`ClipBPETokenizer`.

Features: causal 12-layer transformer, ``ln_final``, the hidden state at the end-of-text token (the largest id of
each row, as OpenAI's argmax), ``@ text_projection``; float32, not normalised (docs/networks.md#masked-transformer, docs/checkpoints.md#state-dict-keys). The official code
runs CLIP in fp16 on GPU (docs/quirks.md#modern-dependencies row 17); here the dtype is explicit and float32 by default.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.text.base import TextEncoder
from models.text.clip_bpe import CONTEXT_LENGTH, ClipBPETokenizer
from utils.checkpoint import CheckpointError, load_state_dict_strict

logger = logging.getLogger(__name__)

CLIP_HF_ID = "openai/clip-vit-base-patch32"
CLIP_OPENAI_CACHE = Path("~/.cache/clip/ViT-B-32.pt")
CLIP_HOWTO = (
    "get the CLIP ViT-B/32 weights once, on a machine with network access, then pass their location as "
    "path=... (the --text_encoder_path option of the scripts): either (a) a folder written by "
    "`transformers.CLIPModel.from_pretrained('openai/clip-vit-base-patch32').save_pretrained(FOLDER)` plus "
    "`CLIPTokenizer.from_pretrained('openai/clip-vit-base-patch32').save_pretrained(FOLDER)`, or (b) OpenAI's "
    "ViT-B-32.pt (https://openaipublic.azureedge.net/clip/models/"
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt, as `clip.load` caches it in "
    "~/.cache/clip/). Nothing is downloaded at run time"
)
# Entries of OpenAI's full CLIP state dict that are not part of the text tower.
_NON_TEXT_KEYS = ("logit_scale", "input_resolution", "context_length", "vocab_size")
# OpenAI residual-block names -> HF encoder-layer names (weight and bias each).
_BLOCK_RENAMES = {
    "attn.out_proj": "self_attn.out_proj",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def openai_text_state_to_hf(
    state: dict[str, Tensor],
    source: str = "state dict",
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """OpenAI CLIP state dict -> (``CLIPTextConfig`` kwargs, ``CLIPTextModelWithProjection`` state dict).

    Sizes are read from the tensors (width, layers, context, vocabulary, projection); heads = width // 64 as in
    OpenAI's ``build_model``. Vision-tower keys are ignored; any other key left unmapped raises ``CheckpointError``.
    """
    text = {k: v for k, v in state.items() if not k.startswith("visual.") and k not in _NON_TEXT_KEYS}
    required = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection")
    missing = [k for k in required if k not in text]
    if missing:
        raise CheckpointError(
            f"{source} is not an OpenAI CLIP state dict: it lacks {missing} (it has e.g. {sorted(state)[:6]})"
        )
    width = int(text["ln_final.weight"].shape[0])
    layer_ids = {int(k.split(".")[2]) for k in text if k.startswith("transformer.resblocks.")}
    layers = max(layer_ids) + 1 if layer_ids else 0
    out: dict[str, Tensor] = {
        "text_model.embeddings.token_embedding.weight": text.pop("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight": text.pop("positional_embedding"),
        "text_model.final_layer_norm.weight": text.pop("ln_final.weight"),
        "text_model.final_layer_norm.bias": text.pop("ln_final.bias"),
        # OpenAI computes x @ P with P (width, embed); nn.Linear stores P^T.
        "text_projection.weight": text.pop("text_projection").t().contiguous(),
    }
    try:
        for i in range(layers):
            src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
            qkv_w = text.pop(src + "attn.in_proj_weight").chunk(3, dim=0)
            qkv_b = text.pop(src + "attn.in_proj_bias").chunk(3, dim=0)
            for name, w, b in zip("qkv", qkv_w, qkv_b):
                out[f"{dst}self_attn.{name}_proj.weight"] = w.contiguous()
                out[f"{dst}self_attn.{name}_proj.bias"] = b.contiguous()
            for old, new in _BLOCK_RENAMES.items():
                for kind in ("weight", "bias"):
                    out[f"{dst}{new}.{kind}"] = text.pop(f"{src}{old}.{kind}")
    except KeyError as exc:
        raise CheckpointError(f"{source}: CLIP text block key {exc.args[0]} is missing") from None
    if text:
        raise CheckpointError(f"{source}: unexpected CLIP keys {sorted(text)[:6]} (not a ViT-B/32-style CLIP?)")
    config = dict(
        vocab_size=int(out["text_model.embeddings.token_embedding.weight"].shape[0]),
        hidden_size=width,
        intermediate_size=int(out["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0]) if layers else 4 * width,
        projection_dim=int(out["text_projection.weight"].shape[0]),
        num_hidden_layers=layers,
        num_attention_heads=max(width // 64, 1),
        max_position_embeddings=int(out["text_model.embeddings.position_embedding.weight"].shape[0]),
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        attention_dropout=0.0,
        bos_token_id=49406,
        eos_token_id=49407,
    )
    return config, {k: v.float() for k, v in out.items()}


def is_torchscript_archive(path: Path) -> bool:
    """True for a ``torch.jit.save`` zip (it carries ``constants.pkl`` and a ``code/`` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def read_openai_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of OpenAI's ``ViT-B-32.pt`` (TorchScript archive) or of a plain saved state dict, on the CPU."""
    if is_torchscript_archive(path):
        # The released file is a TorchScript archive, which weights_only torch.load refuses by design.
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        raise CheckpointError(
            f"cannot read CLIP weights {path}: {exc.__class__.__name__} "
            "(expected OpenAI's ViT-B-32.pt or a torch.save'd CLIP state dict)"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"CLIP weights {path} hold a {type(state).__name__}, expected a state dict")
    return state


def build_clip_text_model(config_kwargs: dict[str, Any], state: dict[str, Tensor], source: str) -> torch.nn.Module:
    """``CLIPTextModelWithProjection`` of that size with ``state`` loaded strictly."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection(CLIPTextConfig(**config_kwargs))
    load_state_dict_strict(model, state, source=source)
    return model


def resolve_clip_source(path: str | Path | None) -> tuple[str, str | Path]:
    """(kind, location) with kind ``openai`` (a file) or ``hf`` (a folder or a cached hub id)."""
    if path is None:
        cached = CLIP_OPENAI_CACHE.expanduser()
        if cached.is_file():
            return "openai", cached
        return "hf", CLIP_HF_ID
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return "openai", candidate.resolve()
    if candidate.is_dir():
        if not (candidate / "config.json").is_file():
            raise FileNotFoundError(f"CLIP folder {candidate} has no config.json; {CLIP_HOWTO}")
        return "hf", candidate.resolve()
    text = str(path)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and not text.endswith((".pt", ".pth", ".bin")):
        return "hf", text  # a hub id such as openai/clip-vit-base-patch32, looked up in the local cache only
    raise FileNotFoundError(f"CLIP weights {path} not found; {CLIP_HOWTO}")


class CLIPTextEncoder(TextEncoder):
    """CLIP text features (B, 512) = OpenAI ``encode_text(clip.tokenize(captions, truncate=True))``."""

    name = "clip"

    def __init__(
        self,
        path: str | Path | None = None,
        device: torch.device | str = "cpu",
        bpe_path: str | Path | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        kind, location = resolve_clip_source(path)
        self.source = f"{kind}:{location}"
        self.hf_tokenizer = None
        self.bpe: ClipBPETokenizer | None = None
        if kind == "openai":
            config, state = openai_text_state_to_hf(read_openai_state_dict(Path(location)), str(location))
            model = build_clip_text_model(config, state, str(location))
            self.bpe = ClipBPETokenizer(bpe_path)
        else:
            model = self._load_hf(location, path)
            self.hf_tokenizer = self._load_hf_tokenizer(location, int(model.config.vocab_size))
            if self.hf_tokenizer is None:
                self.bpe = ClipBPETokenizer(bpe_path)
        super().__init__(model.to(dtype), device)
        self.dtype = dtype
        self.dim = int(model.config.projection_dim)
        self.max_tokens = int(model.config.max_position_embeddings)
        if self.bpe is not None and self.max_tokens != CONTEXT_LENGTH:
            logger.info("CLIP context length %d (OpenAI's is %d)", self.max_tokens, CONTEXT_LENGTH)

    @staticmethod
    def _load_hf(location: str | Path, requested: str | Path | None) -> torch.nn.Module:
        from transformers import CLIPTextModelWithProjection

        try:
            return CLIPTextModelWithProjection.from_pretrained(location, local_files_only=True)
        except OSError as exc:
            where = "the local Hugging Face cache" if requested is None or not Path(location).exists() else location
            raise FileNotFoundError(
                f"CLIP weights {location} not available in {where} ({str(exc).splitlines()[0][:120]}); {CLIP_HOWTO}"
            ) from None

    @staticmethod
    def _load_hf_tokenizer(location: str | Path, vocab_size: int) -> Any:
        """The tokenizer saved with the weights, or None (then the BPE vocabulary file is used)."""
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
        except (OSError, ValueError, TypeError):
            tokenizer = None
        # Without saved vocabulary files, transformers may still build a CLIP tokenizer with a 3-token
        # placeholder vocabulary; only a tokenizer covering the model's vocabulary is usable.
        if tokenizer is None or len(tokenizer) != vocab_size:
            logger.info("no usable tokenizer saved with %s; using the CLIP BPE vocabulary file", location)
            return None
        return tokenizer

    def token_ids(self, captions: list[str]) -> Tensor:
        """(b, t) int64 ids with sot/eot, right-padded (t <= max_tokens); warns when a caption is truncated."""
        if self.bpe is not None:
            rows = []
            for caption in captions:
                ids, truncated = self.bpe.token_ids(caption, self.max_tokens)
                if truncated:
                    logger.warning(
                        "caption longer than CLIP's %d tokens, truncated: %.60r...", self.max_tokens, caption
                    )
                rows.append(ids)
        else:
            rows = self.hf_tokenizer(captions, truncation=False)["input_ids"]
            for i, (caption, ids) in enumerate(zip(captions, rows)):
                if len(ids) > self.max_tokens:
                    logger.warning(
                        "caption longer than CLIP's %d tokens, truncated: %.60r...", self.max_tokens, caption
                    )
                    rows[i] = ids[: self.max_tokens - 1] + [ids[-1]]
        # Zero padding after eot changes nothing: attention is causal and pooling reads the eot position.
        out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def _encode_batch(self, captions: list[str]) -> Tensor:
        ids = self.token_ids(captions).to(self.device)  # (b, t)
        hidden = self.model.text_model(input_ids=ids).last_hidden_state  # (b, t, width), after ln_final
        eot = ids.argmax(dim=-1)  # OpenAI: eot has the largest id
        pooled = hidden[torch.arange(ids.shape[0], device=ids.device), eot]
        return self.model.text_projection(pooled).float()

    def describe(self) -> str:
        tok = "openai-bpe" if self.bpe is not None else "hf-tokenizer"
        return f"clip text ({self.source}, {tok}) dim={self.dim} max_tokens={self.max_tokens} {str(self.dtype)[6:]}"

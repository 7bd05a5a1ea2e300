"""Frozen caption encoders (MiniLM, CLIP ViT-B/32 text tower) and the caption-feature cache."""

from models.text.base import TextEncoder, TextFeatureCache, check_captions
from models.text.registry import TEXT_ENCODER_DIMS, TEXT_ENCODERS, build_text_encoder

__all__ = [
    "TextEncoder",
    "TextFeatureCache",
    "check_captions",
    "build_text_encoder",
    "TEXT_ENCODERS",
    "TEXT_ENCODER_DIMS",
]

"""Public entry point of the text side: ``build_text_encoder``, ``TextEncoder``, ``TextFeatureCache``.

The implementation lives in the :mod:`models.text` package (one file per encoder).
"""

from models.text import TEXT_ENCODER_DIMS, TEXT_ENCODERS, TextEncoder, TextFeatureCache, build_text_encoder

__all__ = ["build_text_encoder", "TextEncoder", "TextFeatureCache", "TEXT_ENCODERS", "TEXT_ENCODER_DIMS"]

"""Rebuild ``checkpoints/demo/t2m/caption_vectors.npz``, the embedded demo model's cached caption vectors.

    python -m prepare.demo_caption_vectors

Run it after retraining the demo model on new captions (``tests/test_cold_start.py`` fails while the file is
stale); see models/text/vector_cache.py for the format and the spot check that guards it.
"""

from __future__ import annotations

from models.pipeline import MoMaskPipeline
from models.text.vector_cache import write_vectors


def main() -> None:
    pipe = MoMaskPipeline.demo()
    captions = pipe.known_captions
    write_vectors(pipe.DEMO_VECTORS, pipe.text_encoder.name, captions, pipe.text_encoder.encode(captions))
    print(f"wrote {len(captions)} caption vectors ({pipe.text_encoder.describe()}) to {pipe.DEMO_VECTORS}")


if __name__ == "__main__":
    main()

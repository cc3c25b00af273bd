"""A cross-encoder's exported graph run with ONNX Runtime or OpenVINO: raw scores of (query, passage) pairs, as
``CrossEncoder.predict`` gives them on torch.

sentence-transformers runs exported models through optimum, whose ONNX side does not support transformers 5 yet
(huggingface/optimum-onnx#114) and whose OpenVINO side pins transformers below 5.6; the runtimes themselves have
no such pins. This module calls them directly with the folder's own tokenizer, tokenizing as sentence-transformers
does (pairs, longest-first truncation to the model's maximum length, padding per batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from haystack_hardneg.files import confined_path
from haystack_hardneg.graphs.runners import onnx_runner, openvino_runner
from haystack_hardneg.rank.layout import BACKENDS, export_file_name, read_scoring_head


class ExportedCrossEncoder:
    """The exported ``file_name`` (default: the backend's plain export) of the cross-encoder in ``model_dir``.

    ``options``: ``provider`` and ``threads`` (ONNX Runtime), ``ov_config``, ``device`` and ``threads``
    (OpenVINO); the keys of sentence-transformers' ``model_kwargs`` other than ``file_name``.
    ``tokenizer_kwargs`` go to ``AutoTokenizer.from_pretrained`` (e.g. ``{"model_max_length": 256}``)."""

    def __init__(self, model_dir: str | Path, backend: str, *, file_name: str | None = None,
                 max_length: int | None = None, options: dict[str, Any] | None = None,
                 tokenizer_kwargs: dict[str, Any] | None = None):
        from transformers import AutoConfig, AutoTokenizer

        if backend not in BACKENDS:
            raise ValueError(f"Unknown exported backend {backend!r}; choose one of {list(BACKENDS)}.")
        self.model_dir = Path(model_dir).expanduser()
        self.backend = backend
        self.file_name = file_name or export_file_name(backend)
        path = confined_path(self.model_dir, self.file_name, named_in=f"the file_name of {self.model_dir}'s export")
        if not path.is_file():
            raise FileNotFoundError(f"No {backend} export at {path}: run `haystack-hardneg export {self.model_dir} "
                                    f"--backend {backend}` first (or give model_kwargs={{'file_name': ...}}).")
        self.head = read_scoring_head(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), **(tokenizer_kwargs or {}))
        # As sentence-transformers: the tokenizer's length, capped at the positions the model has.
        positions = getattr(AutoConfig.from_pretrained(str(self.model_dir)), "max_position_embeddings", None)
        window = self.tokenizer.model_max_length
        self.max_length = max_length or min(window, positions or window)
        options = dict(options or {})
        self.input_names, self._run = (onnx_runner(path, options) if backend == "onnx"
                                       else openvino_runner(path, options))

    def _scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        encoded = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True,
                                 truncation="longest_first", max_length=self.max_length, return_tensors="np")
        # A graph input the tokenizer does not give (token types of a tokenizer that leaves them out) is zeros.
        feed = {name: (encoded[name] if name in encoded else np.zeros_like(encoded["input_ids"])).astype(np.int64)
                for name in self.input_names}
        return self.head(self._run(feed), encoded["attention_mask"])

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """Raw scores (no activation) of ``pairs``, batched by length so that little padding is computed."""
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        order = np.argsort([-(len(q) + len(d)) for q, d in pairs], kind="stable")
        scores = np.empty(len(pairs), dtype=np.float64)
        for start in range(0, len(pairs), batch_size):
            batch = order[start:start + batch_size]
            scores[batch] = self._scores([pairs[i] for i in batch])
        return scores

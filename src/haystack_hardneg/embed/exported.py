"""A sentence-transformers member run on ONNX Runtime or OpenVINO (optionally int8, or computed in bfloat16), or
on torch in bfloat16: its transformer exported once per model and backend, pooled as the model pools, and used only
when it gives torch fp32's vectors.

sentence-transformers' own ONNX/OpenVINO backends go through optimum, which does not install beside transformers 5;
the graphs here are exported and run as the ranker's export does (``haystack_hardneg.graphs``). No Haystack.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from haystack_hardneg.embed.ensemble import l2_normalize

logger = logging.getLogger(__name__)

MIN_COSINE = 0.999  # below this, on the check texts, the backend is not used
POOLINGS = ("mean", "cls", "max")
# Texts of spread lengths and kinds, to check an export against torch and to calibrate int8 activations.
CHECK_TEXTS = (
    "pump", "What does the warranty cover?", "How do I reset the router to its factory settings?",
    "Vitamin D supplementation and bone mineral density in elderly women: a randomised controlled trial.",
    "The returns policy allows unused items to be sent back within thirty days of delivery for a full refund, "
    "provided the original packaging is kept and the receipt is shown.",
    "Error 0x80070005 (access denied) appears when the service account lacks write permission on the shared folder; "
    "grant modify rights to the account, restart the agent and check the event log for further warnings. " * 3,
    "Les conditions générales s'appliquent à toute commande passée sur le site.",
    "Table 3: median latency (ms) 280, 310, 1,174; throughput 12.4 queries/s; p < 0.01.",
)


class BackendUnsuitable(ValueError):
    """The model or its export cannot stand in for torch here (architecture, pooling, or vectors too far off)."""


def _check_architecture(model) -> str:
    """The pooling mode of a Transformer + Pooling (+ Normalize) model; anything else is refused."""
    modules = [type(m).__name__ for m in model]
    if modules[:2] != ["Transformer", "Pooling"] or any(m != "Normalize" for m in modules[2:]):
        raise BackendUnsuitable(f"it has modules {modules}; an exported backend runs Transformer + Pooling "
                                "(+ Normalize)")
    pooling = model[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode not in POOLINGS or not getattr(pooling, "include_prompt", True):
        raise BackendUnsuitable(f"its pooling ({mode}, include_prompt={getattr(pooling, 'include_prompt', True)}) "
                                f"is not one of {POOLINGS} over the whole text")
    return mode


def int8_scheme(backend: str) -> str:
    """How ``backend`` quantises to int8, as it names the export and keys the vectors cached from it: ONNX per
    channel ("int8pc"), so that a per-matrix export or its vectors from an older version are never reused."""
    return "int8pc" if backend == "onnx" else "int8"


def export_path(folder: Path, fingerprint: str, backend: str, int8: bool) -> Path:
    int8_tag = f"-{int8_scheme(backend)}" if int8 else ""
    return folder / f"{fingerprint}-{backend}{int8_tag}{'.onnx' if backend == 'onnx' else '.xml'}"


def _export(model, folder: Path, fingerprint: str, backend: str, int8: bool) -> None:
    """The graph for ``backend``, and each one it is made from that is missing: ONNX, then OpenVINO, then int8."""
    from haystack_hardneg.graphs.convert import export_onnx, openvino_from_onnx, quantize_onnx, quantize_openvino

    onnx = export_path(folder, fingerprint, "onnx", False)
    if not onnx.is_file():
        export_onnx(model, onnx)
    target = export_path(folder, fingerprint, backend, int8)
    if backend == "onnx":
        if int8:
            quantize_onnx(onnx, target)
        return
    plain = export_path(folder, fingerprint, "openvino", False)
    if not plain.is_file():
        openvino_from_onnx(onnx, plain)
    if int8:
        quantize_openvino(plain, target, model.tokenizer, [(t,) for t in CHECK_TEXTS], model.max_seq_length)


class ExportedEncoder:
    """``encode(texts, prompt)`` like ``SentenceTransformer.encode`` (unnormalised), on an exported graph."""

    def __init__(self, model, fingerprint: str, backend: str, int8: bool, folder: Path, *, bf16: bool = False):
        from haystack_hardneg.graphs.runners import onnx_runner, openvino_runner

        self.pooling = _check_architecture(model)
        path = export_path(folder, fingerprint, backend, int8)
        if not path.is_file():
            logger.info("Exporting ensemble member to %s (once per model and backend).", path)
            _export(model, folder, fingerprint, backend, int8)
        self.tokenizer, self.max_length = model.tokenizer, model.max_seq_length
        # The graph is float32 either way; bfloat16 is OpenVINO's choice of how to compute it.
        options = {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}} if bf16 else {}
        self.input_names, self._run = (onnx_runner if backend == "onnx" else openvino_runner)(path, options)

    def encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        """Batches of similar length (little padding), returned in the order of ``texts``."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.concatenate([self._batch([prompt + texts[i] for i in order[start:start + batch_size]])
                                  for start in range(0, len(texts), batch_size)])
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np")
        feed = {name: (encoded[name] if name in encoded else np.zeros_like(encoded["input_ids"])).astype(np.int64)
                for name in self.input_names}
        tokens = np.asarray(self._run(feed), dtype=np.float32)
        mask = encoded["attention_mask"].astype(np.float32)[..., None]
        if self.pooling == "cls":
            return tokens[:, 0]
        if self.pooling == "max":
            return np.where(mask > 0, tokens, -1e9).max(axis=1)
        return (tokens * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)


class TorchBf16Encoder:
    """``encode`` like :class:`ExportedEncoder`, by a bfloat16 copy of the model on torch (vectors in float32)."""

    def __init__(self, model):
        import copy

        import torch

        self.model = copy.deepcopy(model).to(torch.bfloat16)

    def encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self.model.encode(texts, prompt=prompt or None, batch_size=batch_size, show_progress_bar=False,
                                    convert_to_tensor=True)
        return vectors.float().cpu().numpy()


def non_default_encoder(model, fingerprint: str, backend: str, int8: bool, folder: Path, *, bf16: bool):
    """What runs a member other than torch in fp32: a bfloat16 copy on torch, or ``backend``'s export (made once)."""
    if backend == "torch":
        return TorchBf16Encoder(model)
    return ExportedEncoder(model, fingerprint, backend, int8, folder, bf16=bf16)


def checked(model, exported: ExportedEncoder, batch_size: int) -> float:
    """The lowest cosine between torch fp32's vectors and the export's (or bf16 copy's) on the check texts; refused
    below MIN_COSINE."""
    texts = list(CHECK_TEXTS)
    reference = l2_normalize(np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False)))
    candidate = l2_normalize(exported.encode(texts, "", batch_size))
    lowest = float(np.min(np.sum(reference * candidate, axis=1)))
    if lowest < MIN_COSINE:
        raise BackendUnsuitable(f"its vectors are at cosine {lowest:.4f} of torch fp32's on the check texts "
                                f"(at least {MIN_COSINE} needed)")
    return lowest

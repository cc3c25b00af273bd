"""Loading a CrossEncoderRanker's model as its init parameters say: on torch, from an export, or, for a default
export chosen on another class of CPU, whichever of torch and the folder's checked exports is fastest here."""

from __future__ import annotations

from typing import Any

from haystack import logging

from haystack_hardneg.extras import MissingExtraError
from haystack_hardneg.machine import cpu, describe_cpu
from haystack_hardneg.rank.choice import (
    EXPORT_ONLY_KWARGS,
    RETIME_QUERIES,
    announce_choice,
    fastest,
    probe_records,
    read_serving_choice,
    safe_exports,
    serving_cache_file,
    unsuited_cpu_dtype,
    write_serving_choice,
)
from haystack_hardneg.rank.layout import UnsupportedModelError
from haystack_hardneg.rank.runtime import ExportedCrossEncoder
from haystack_hardneg.rank.speed import DEFAULT_MIN_SPEEDUP, measure, probe_batches
from haystack_hardneg.train.heads import load_torch_cross_encoder

logger = logging.getLogger(__name__)

# What an export that cannot run here raises: the ranker falls back to torch (auto) or reports it.
CANNOT_RUN = (MissingExtraError, FileNotFoundError, UnsupportedModelError)


def load_torch(ranker, source: str):
    """``ranker``'s model on torch, with its device, length and model/tokenizer/config kwargs; bfloat16 asked for on
    a CPU without bfloat16 instructions is refused at WARNING and loaded in float32."""
    device = ranker.device.to_torch_str()
    # The export-only keys would reach the torch model's constructor.
    model_kwargs = {k: v for k, v in (ranker.model_kwargs or {}).items() if k not in EXPORT_ONLY_KWARGS} or None
    if device == "cpu" and model_kwargs and (refused := unsuited_cpu_dtype(model_kwargs)):
        key, lacking = refused
        logger.warning("model_kwargs {key}=bfloat16 is refused on this CPU ({cpu}): it has no {lacking} "
                       "instructions, and bfloat16 runs several times slower than float32 without them; "
                       "loading in float32.", key=key, cpu=describe_cpu(cpu()), lacking=lacking)
        model_kwargs = {k: v for k, v in model_kwargs.items() if k != key} or None
    return load_torch_cross_encoder(
        source, device=device, max_length=ranker.max_length,
        token=ranker.token.resolve_value() if ranker.token else None, trust_remote_code=ranker.trust_remote_code,
        model_kwargs=model_kwargs, processor_kwargs=ranker.tokenizer_kwargs, config_kwargs=ranker.config_kwargs,
        backend="torch",
    )


def load_export(ranker, source: str, backend: str, file_name: str | None, *,
                announce: bool = True) -> ExportedCrossEncoder:
    """The export; ``announce``: say at INFO that it scores (not for one loaded only to be timed)."""
    options = {k: v for k, v in (ranker.model_kwargs or {}).items() if k != "file_name"}
    exported = ExportedCrossEncoder(source, backend, file_name=file_name, max_length=ranker.max_length,
                                    options=options, tokenizer_kwargs=ranker.tokenizer_kwargs)
    if announce:
        logger.info("Scoring with the {backend} export {file}.", backend=backend, file=exported.file_name)
    return exported


def fastest_here(ranker, source: str, default: dict[str, Any]) -> tuple[tuple[str, str | None], Any]:
    """((backend, export file), the loaded model) of whichever of torch and the folder's checked exports is fastest
    on this CPU: as timed here before (kept in the serving cache), else timed now on the validation candidates kept
    with the model."""
    cache = serving_cache_file(source)
    choice, loaded = read_serving_choice(cache), {}
    if choice is None:
        choice, loaded = _time_backends(ranker, source, default)
        write_serving_choice(cache, choice)
    else:
        logger.info("Backend for {model} on this CPU as timed here before ({cache}).", model=source, cache=cache)
    announce_choice(source, default, choice)
    backend, file_name = choice["backend"], choice["file_name"]
    model = loaded.get(file_name or "torch")
    if model is None:
        model = load_torch(ranker, source) if backend == "torch" else load_export(ranker, source, backend, file_name)
    return (backend, file_name), model


def _time_backends(ranker, source: str, default: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Torch and every checked export timed side by side on this CPU: the choice (the fastest that beats torch by
    the export's own ``min_speedup``, else torch) and the models loaded for it, by file name (torch: "torch")."""
    batches = probe_batches(probe_records(source), RETIME_QUERIES + 1)
    if len(batches) < 2:
        return {"backend": "torch", "file_name": None, "speed": None, "reason": (
            "no validation candidates are kept with the model to time its exports on")}, {}
    loaded: dict[str, Any] = {"torch": load_torch(ranker, source)}
    systems = {"torch": lambda pairs: loaded["torch"].predict(pairs, batch_size=ranker.batch_size,
                                                              show_progress_bar=False)}
    backends = {}
    for backend, file_name in safe_exports(source):
        try:
            loaded[file_name] = load_export(ranker, source, backend, file_name, announce=False)
        except CANNOT_RUN as error:
            logger.info("Export {file} cannot run here ({error}); not timed.", file=file_name, error=error)
            continue
        backends[file_name] = backend
        systems[file_name] = lambda pairs, e=loaded[file_name]: e.predict(pairs, ranker.batch_size)
    report = measure(systems, batches, reference="torch")
    # A default made with speed not required (min_speedup 0) or before it was recorded must still beat torch.
    winner = fastest(report, float(default.get("min_speedup") or DEFAULT_MIN_SPEEDUP))
    return {"backend": backends.get(winner, "torch"), "file_name": None if winner == "torch" else winner,
            "speed": report}, loaded

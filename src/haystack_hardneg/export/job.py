"""The export step as one job: convert, check against fp32 on the validation candidates, record in the folder."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from haystack_hardneg.export.config import ExportConfig
from haystack_hardneg.export.gate import gate_records, quality_check
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.graphs.convert import (
    export_onnx,
    openvino_from_onnx,
    optimize_onnx,
    quantize_onnx,
    quantize_openvino,
)
from haystack_hardneg.machine import cpu, describe_cpu, missing_int8
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.rank.layout import export_file_name, read_scoring_head
from haystack_hardneg.rank.runtime import ExportedCrossEncoder
from haystack_hardneg.rank.speed import measure, probe_batches
from haystack_hardneg.scoring.settings import (
    CALIBRATION_PAIRS_FILE,
    VALIDATION_CANDIDATES_FILE,
    read_ranker_settings,
    update_ranker_settings,
    weights_fingerprint,
)
from haystack_hardneg.train.heads import load_torch_cross_encoder

# The fp32 scores of the validation candidates, for the weights they were computed from.
REFERENCE_SCORES_FILE = "hardneg_validation_scores.json"


def _model_folder(model_dir: str) -> Path:
    folder = Path(model_dir).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a cross-encoder folder (no config.json): give the folder a "
                                f"training wrote (OUT/model) or any saved CrossEncoder.")
    return folder


def _check_records(config: ExportConfig, folder: Path) -> list[dict[str, Any]]:
    """The candidates to check on (and, when the model keeps no training pairs, to calibrate on):
    ``config.candidates``, else the validation candidates kept with the model."""
    path = Path(config.candidates).expanduser() if config.candidates else folder / VALIDATION_CANDIDATES_FILE
    if not config.candidates and not path.is_file():
        return []
    return gate_records(load_candidates(path))


def _spread(pairs: list[tuple[str, str]], size: int) -> list[tuple[str, str]]:
    """``size`` of ``pairs``, spread evenly over them."""
    step = max(1, len(pairs) // size)
    return pairs[::step][:size]


def _calibration_split(folder: Path, records: list[dict[str, Any]], size: int):
    """(calibration pairs, what they are, the records to check on) for static int8: the training pairs kept with
    the model when there are any, and every record of another query is checked; else every other record calibrates
    and the rest are checked. Either way the check never sees the calibration's own queries."""
    kept = folder / CALIBRATION_PAIRS_FILE
    if kept.is_file():
        pairs = _spread([(row["query"], row["text"]) for row in read_jsonl(kept)], size)
        calibrated = {query for query, _ in pairs}
        return (pairs, f"the model's training pairs ({CALIBRATION_PAIRS_FILE})",
                [r for r in records if r["query"] not in calibrated])
    if len(records) < 2:
        raise ValueError(f"Static int8 needs calibration pairs: {folder} keeps neither training pairs "
                         f"({CALIBRATION_PAIRS_FILE}) nor enough validation candidates ({VALIDATION_CANDIDATES_FILE}); "
                         f"give --candidates FILE (a candidates.jsonl).")
    pairs = [(r["query"], c["text"]) for r in records[::2] for c in r["candidates"]]
    return _spread(pairs, size), f"{len(records[::2])} validation queries", records[1::2]


def _convert(config: ExportConfig, folder: Path, model, calibration: tuple[list[tuple[str, str]], str] | None,
             log) -> str:
    """Write the export (static int8 calibrated on ``calibration``: pairs and what they are); returns its file name
    relative to ``folder``."""
    name = export_file_name(config.backend, config.optimize, config.quantize)
    log(f"Exporting {folder} to ONNX ...")
    current = export_onnx(model, folder / export_file_name("onnx"))
    if config.backend == "onnx":
        if config.optimize:
            current = optimize_onnx(current, folder / export_file_name("onnx", config.optimize), config.optimize)
        if config.quantize:
            current = quantize_onnx(current, folder / name)
        return name
    log("Converting to OpenVINO ...")
    current = openvino_from_onnx(current, folder / export_file_name("openvino"))
    if config.quantize:
        pairs, source = calibration
        log(f"Calibrating int8 on {len(pairs)} (query, passage) pairs of {source} ...")
        quantize_openvino(current, folder / name, model.tokenizer, pairs, model.max_length)
    return name


def export_model(config: ExportConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Export ``config.model_dir`` as ``config`` says, check it against the fp32 model, record it in
    ``hardneg.json`` (and make it the default backend when it passed and ``make_default``); returns the record."""
    folder = _model_folder(config.model_dir)
    read_scoring_head(folder)  # refuses an unsupported model before anything is written
    records = _check_records(config, folder)
    calibration, checked = None, records
    if config.backend == "openvino" and config.quantize:
        pairs, source, checked = _calibration_split(folder, records, config.calibration_pairs)
        calibration = (pairs, source)
    target = export_file_name(config.backend, config.optimize, config.quantize)
    keep_default = (read_ranker_settings(folder).get("backend") or {}).get("file_name") == target
    if keep_default:  # the default's file is rewritten now: not the default until it passes again
        update_ranker_settings(folder, backend=None)
    # Eager attention exports as matmul, mask add, softmax, matmul: the pattern OpenVINO's CPU plugin fuses into
    # one kernel per layer. Torch's SDPA exports with guards for fully masked rows (IsNaN, Select) that it does
    # not fuse. Both compute the same scores, which the gate checks.
    model = load_torch_cross_encoder(str(folder), device="cpu", model_kwargs={"attn_implementation": "eager"})
    started = time.perf_counter()
    file_name = _convert(config, folder, model, calibration, log)
    return check_and_record(config, folder, file_name, model, checked, seconds=time.perf_counter() - started,
                            log=log, was_default=keep_default, calibrated_on=calibration and calibration[1])


def check_and_record(config: ExportConfig, folder: Path, file_name: str, model, records: list[dict[str, Any]], *,
                     seconds: float | None = None, log: Callable[[str], None] = print,
                     was_default: bool = False, calibrated_on: str | None = None) -> dict[str, Any]:
    """The quality gate of the export ``file_name`` against ``model`` (the fp32 CrossEncoder) on ``records``, and
    its record in ``hardneg.json`` and the model card; the default backend only when it passed (and
    ``make_default``, or it was the default before: ``was_default``)."""
    import torch

    gate = speed = None
    weights = weights_fingerprint(folder)
    if records:
        log(f"Checking against fp32 on {len(records)} validation queries ...")
        exported = ExportedCrossEncoder(folder, config.backend, file_name=file_name)

        def reference(pairs):
            return _reference_scores(folder, weights, pairs, lambda: model.predict(
                pairs, batch_size=32, activation_fn=torch.nn.Identity(), convert_to_numpy=True))

        gate = quality_check(reference, exported.predict, records, config.max_loss)
        if gate["passed"] and config.min_speedup > 0:
            speed = speed_check(config, folder, exported, records, log)
    record = {"backend": config.backend, "file_name": file_name, "optimize": config.optimize,
              "quantize": config.quantize, "export_seconds": None if seconds is None else round(seconds, 1),
              "weights": weights, "calibrated_on": calibrated_on, "gate": gate, "speed": speed}
    passed = bool(gate and gate["passed"]) and (speed is None or speed["faster"])
    made_default = passed and (config.make_default or was_default)
    settings = read_ranker_settings(folder)
    changes: dict[str, Any] = {"exports": {**settings.get("exports", {}), file_name: record}}
    if made_default:
        changes["backend"] = {"name": config.backend, "file_name": file_name, "weights": weights,
                              "cpu": cpu(), "min_speedup": config.min_speedup}
    elif not passed and (settings.get("backend") or {}).get("file_name") == file_name:
        changes["backend"] = None  # the default's file now holds an export that failed its check
    update_ranker_settings(folder, **changes)
    append_export_card(folder, record, made_default)
    return {**record, "default": made_default, "model_dir": str(folder)}


# What the ranker's torch path is timed as: its default batch size, sentence-transformers' default attention.
SERVING_BATCH_SIZE = 16


def speed_check(config: ExportConfig, folder: Path, exported: ExportedCrossEncoder, records: list[dict[str, Any]],
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """The export timed against torch fp32 on this machine (side by side, a query's top 20 candidates per batch,
    as a ranker serves them), and whether it is at least ``config.min_speedup`` times faster."""
    batches = probe_batches(records, config.speed_queries + 1)
    if config.quantize and (lacking := missing_int8()):
        log(f"This CPU has no {lacking} instructions: int8 matrix products run widened and are rarely faster than "
            f"fp32 here; timing decides.")
    log(f"Timing torch fp32 and the export side by side on {len(batches) - 1} queries ...")
    torch_model = load_torch_cross_encoder(str(folder), device="cpu", max_length=exported.max_length)

    def on_torch(pairs):
        return torch_model.predict(pairs, batch_size=SERVING_BATCH_SIZE, show_progress_bar=False)

    report = measure({"torch": on_torch, "export": lambda pairs: exported.predict(pairs, SERVING_BATCH_SIZE)},
                     batches, reference="torch")
    speedup = report["speedup"]["export"]
    return {**report, "min_speedup": config.min_speedup, "faster": speedup >= config.min_speedup}


def _reference_scores(folder: Path, weights: str, pairs, compute: Callable[[], Any]) -> list[float]:
    """The fp32 model's scores of ``pairs``, kept in the folder for the weights they came from: each further export
    of the same model is checked against them without scoring on torch again."""
    digest = hashlib.sha256(json.dumps([weights, list(pairs)]).encode()).hexdigest()[:16]
    cache = folder / REFERENCE_SCORES_FILE
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == digest:
            return stored["scores"]
    scores = [float(s) for s in compute()]
    atomic_write_text(cache, json.dumps({"key": digest, "scores": scores}))
    return scores


def describe(record: dict[str, Any]) -> str:
    """One paragraph for people: what was written and what the gate found."""
    gate = record["gate"]
    took = f" ({record['export_seconds']} s)" if record.get("export_seconds") is not None else ""
    text = f"{record['backend']} export: {record['file_name']}{took}."
    if record.get("calibrated_on"):
        text += f" int8 calibrated on {record['calibrated_on']}."
    if gate is None:
        return text + (" Not checked: no validation candidates with a relevant document (the training keeps them in "
                       "the model folder; else give --candidates FILE); not made the default backend.")
    text += _gate_text(gate)
    if not gate["passed"]:
        return text + " LOSS ABOVE THE LIMIT: kept, but not made the default backend."
    if record.get("speed"):
        text += _speed_text(record["speed"])
        if not record["speed"]["faster"]:
            return text + " NOT FASTER THAN TORCH HERE: kept, but not made the default backend."
    return text + (" Now the folder's default backend (CrossEncoderRanker backend='auto')." if record.get("default")
                   else " Passed.")


def _gate_text(gate: dict[str, Any]) -> str:
    ndcg = gate["ndcg@10"]
    return (f" nDCG@10 on {gate['queries']} validation queries: fp32 {ndcg['fp32']:.4f}, exported "
            f"{ndcg['exported']:.4f} (loss {ndcg['loss']:+.4f}, limit {gate['max_loss']}); score correlation "
            f"{gate['score_correlation']:.4f}, same top document in {gate['same_top1']:.0%} of queries.")


def _speed_text(speed: dict[str, Any]) -> str:
    ms = speed["median_ms"]
    return (f" Speed on this CPU ({describe_cpu(speed['cpu'])}), {speed['batches']} queries of "
            f"{speed['pairs_per_batch']:g} pairs: torch fp32 {ms['torch']:.0f} ms, export {ms['export']:.0f} ms "
            f"({speed['speedup']['export']:.2f}x, needed {speed['min_speedup']:g}x).")


def append_export_card(folder: Path, record: dict[str, Any], made_default: bool) -> None:
    """A line per export in the model card, under one heading."""
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else "# Cross-encoder\n"
    heading = "## Exported backends (haystack-hardneg)"
    if heading not in text:
        text = text.rstrip() + f"\n\n{heading}\n"
    line = "- " + describe({**record, "default": made_default})
    atomic_write_text(card, text.rstrip() + "\n" + line + "\n")

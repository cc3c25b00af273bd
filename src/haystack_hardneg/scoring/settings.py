"""``hardneg.json``: the settings a training run stores beside its model for ``CrossEncoderRanker``.

Training writes it (the fusion weight chosen on its validation slice, and what that choice rested on); the ranker
reads the weight back for ``fusion_alpha="auto"``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.options import is_number

RANKER_SETTINGS_FILE = "hardneg.json"


def write_ranker_settings(model_dir: str | Path, fusion: dict[str, Any], chosen_on: str,
                          first_stage: str | None = None) -> None:
    """Store the fusion weight of ``fusion`` (a ``choose_fusion_alpha`` result) in ``model_dir``, with the rule
    that chose it, the plain best weight and the scores behind it; ``chosen_on`` says which queries they were
    measured on, ``first_stage`` which first stage produced their candidates (``CrossEncoderRanker`` applies the
    weight only behind that one)."""
    settings = {"fusion_alpha": fusion["best_alpha"], "chosen_on": chosen_on, "first_stage_name": first_stage,
                "p_value": fusion.get("p_value"), "significance": fusion.get("significance"),
                "rule": fusion["rule"], "argmax_alpha": fusion["argmax_alpha"],
                "validation": fusion["best"], "reranker_alone": fusion["reranker_alone"],
                "first_stage": fusion["first_stage"],
                # How much evidence chose the weight: queries with a relevant candidate, and the fallback if too few.
                "validation_queries": fusion["queries"],
                "informative_queries": fusion.get("informative_queries"),
                "min_informative_queries": fusion.get("min_informative_queries"),
                "fallback": fusion.get("fallback")}
    atomic_write_text(Path(model_dir) / RANKER_SETTINGS_FILE, json.dumps(settings, indent=2))


def read_fusion_alpha(model_dir: str | Path) -> float | None:
    """The fusion weight stored in ``model_dir``; ``None`` without a settings file, without a weight, or for a
    weight of 1 (the re-ranker alone: nothing to fuse). A weight that is not a number in 0..1 is an error naming the
    file: read as it stands, it would rank by something the training never chose."""
    settings = read_ranker_settings(model_dir)
    alpha = settings.get("fusion_alpha")
    if alpha is None:
        return None
    if not (is_number(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"{_settings_path(model_dir)}: fusion_alpha must be a number in 0..1 or null, got "
                         f"{alpha!r}; train the model again, or set the ranker's fusion_alpha yourself.")
    return None if alpha == 1.0 else float(alpha)


def applicable_fusion_alpha(model_dir: str | Path, first_stage: str | None) -> tuple[float | None, str | None]:
    """The stored fusion weight to apply behind ``first_stage`` (``None``: the re-ranker alone) and, when a weight is
    stored but set aside, why: a weight applies only behind the first stage it was chosen on (``first_stage_name``),
    since one chosen for another retriever can make this one's results worse."""
    alpha = read_fusion_alpha(model_dir)  # checks the stored value; 1 (the ranker alone) reads as None
    if alpha is None:
        return None, None
    chosen_on = read_ranker_settings(model_dir).get("first_stage_name")
    if first_stage is not None and first_stage == chosen_on:
        return alpha, None
    reason = (f"this ranker's first_stage is {first_stage!r}" if first_stage is not None
              else "a ranker cannot see which retriever feeds it")
    where = repr(chosen_on) if chosen_on else "the training run's first stage"
    return None, (f"{_settings_path(model_dir)} holds the fusion weight {alpha} chosen on {where}; {reason}, so it "
                  f"ranks by the cross-encoder alone, as SentenceTransformersSimilarityRanker does.")


def _settings_path(model_dir: str | Path) -> Path:
    return Path(model_dir).expanduser() / RANKER_SETTINGS_FILE


# The held-out validation queries' first-stage candidates, kept with the model: an export is checked on them.
VALIDATION_CANDIDATES_FILE = "hardneg_validation.jsonl"
# A sample of the training's own (query, passage) pairs, kept with the model: static int8 is calibrated on them, so
# that every validation query stays free for the export's check.
CALIBRATION_PAIRS_FILE = "hardneg_calibration.jsonl"


def read_ranker_settings(model_dir: str | Path) -> dict[str, Any]:
    """Everything in ``hardneg.json`` (an empty mapping without one); a file that is not a JSON object is an error
    naming it."""
    path = _settings_path(model_dir)
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{path}: not a settings file ({error or 'nested too deeply'}); train the model again or "
                         f"delete the file.") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(settings).__name__}.")
    return settings


def update_ranker_settings(model_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """``hardneg.json`` with ``changes`` merged in (written atomically, other keys kept)."""
    settings = {**read_ranker_settings(model_dir), **changes}
    atomic_write_text(Path(model_dir).expanduser() / RANKER_SETTINGS_FILE, json.dumps(settings, indent=2))
    return settings


def read_default_backend(model_dir: str | Path) -> tuple[str, str | None, str | None]:
    """The backend and file the folder's exports made its default after passing their quality gate, and the
    fingerprint of the weights it was made from; ``("torch", None, None)`` without one."""
    default = read_ranker_settings(model_dir).get("backend") or {}
    return default.get("name", "torch"), default.get("file_name"), default.get("weights")


def weights_fingerprint(model_dir: str | Path) -> str:
    """A hash of the model's own weight files (not its exports): an export recorded under another fingerprint was
    made from other weights. Hashed once per process while the files keep their size and modification time (a
    ranker's warm-up asks several times, and a MiniLM's weights are 90 MB)."""
    folder = Path(model_dir).expanduser()
    files = tuple((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns)
                  for path in sorted(folder.rglob("*")) if _is_weights(path, folder) for stat in [path.stat()])
    return _hashed_weights(str(folder.resolve()), files)


def _is_weights(path: Path, folder: Path) -> bool:
    return path.suffix in (".safetensors", ".bin") and path.relative_to(folder).parts[0] not in ("onnx", "openvino")


@functools.lru_cache(maxsize=64)
def _hashed_weights(folder: str, files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for relative, _, _ in files:
        digest.update(relative.encode())
        with (Path(folder) / relative).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]

"""Checkpoints and resume: the manifest a run writes beside its checkpoints (``run.json``), and the choice of
the checkpoint to resume from, refused when it was trained differently (the result would match neither run)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import saved_head
from haystack_hardneg.train.validation import VALIDATION_SPLIT

logger = logging.getLogger(__name__)

RUN_MANIFEST_FILE = "run.json"
# Settings that shape the optimisation path; the rest (where to write, names for the model card) may change.
_RESUME_SETTINGS = ("base_model", "loss", "epochs", "batch_size", "encoder_lr", "head_lr", "margin", "warmup_ratio",
                    "validation_fraction", "eval_steps", "max_length", "precision", "seed")


def triplets_fingerprint(triplets) -> str:
    """A hash of the triplet rows' texts in order: resuming on other rows would train on a mixture of two sets."""
    digest = hashlib.sha256()
    for row in triplets:
        digest.update("\x1e".join(str(row[c]) for c in sorted(row)).encode())
        digest.update(b"\x1d")
    return digest.hexdigest()


def run_manifest(config: TrainingConfig, base: str, head: str, triplets,
                 validation_candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run's checkpoints were trained with, written beside them so that a resume can be checked. The
    validation candidates are in it because they choose the best checkpoint that a resumed run goes on comparing."""
    settings = {name: getattr(config, name) for name in _RESUME_SETTINGS}
    # Later options, named where set, so that checkpoints written before they existed still resume.
    settings.update({name: getattr(config, name) for name in ("max_steps", "max_validation_queries", "teacher_scale",
                                                              "label_weight", "teacher_model", "keep_layers")
                     if getattr(config, name) != TrainingConfig.__dataclass_fields__[name].default})
    validation = hashlib.sha256(json.dumps(validation_candidates, sort_keys=True, default=str).encode()).hexdigest()
    return {"settings": {**settings, "base_model": base, "head": head}, "validation_split": VALIDATION_SPLIT,
            "triplets": triplets_fingerprint(triplets), "rows": len(triplets), "validation_candidates": validation}


def check_resumable(checkpoints: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume checkpoints that were trained with other settings, another split rule or other triplets:
    the result would match neither run. Checkpoints of a version that wrote no manifest are resumed with a warning."""
    saved_path = checkpoints / RUN_MANIFEST_FILE
    if not saved_path.is_file():
        logger.warning("The checkpoints in %s carry no %s (written by an older version): resuming without checking "
                       "that they were trained with these settings and triplets.", checkpoints, RUN_MANIFEST_FILE)
        atomic_write_text(saved_path, json.dumps(manifest, indent=2))  # later resumes of this run are checked
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    changed = [f"{name}: {saved['settings'].get(name)!r} -> {value!r}" for name, value in manifest["settings"].items()
               if saved["settings"].get(name) != value]
    if saved.get("validation_split") != manifest["validation_split"]:
        changed.append(f"validation split rule: {saved.get('validation_split')!r} -> {manifest['validation_split']!r}")
    if saved.get("validation_candidates") != manifest["validation_candidates"]:
        changed.append("validation candidates (they choose the best checkpoint)")
    if saved.get("triplets") != manifest["triplets"]:
        changed.append(f"triplets: {saved.get('rows')} rows -> {manifest['rows']} rows with other texts or order"
                       if saved.get("rows") != manifest["rows"] else "triplets: same row count, other texts or order")
    if changed:
        raise ValueError(f"Cannot resume from {checkpoints}: the checkpoints were trained differently ("
                         + "; ".join(changed) + "). Resume with the same settings and triplets, or start afresh "
                         "without resume (the old checkpoints are then removed).")


def checkpoint_to_resume(checkpoints: Path, *, resume: bool, base: str, head: str) -> str | None:
    """The last checkpoint in ``checkpoints`` when ``resume`` (``None`` when there is none), refused when its
    head is not the one this run builds. Without ``resume``, an earlier run's checkpoints are removed: a fresh
    run must not rotate (or later resume) them as if they were its own."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not resume:
        if found:
            logger.warning("Removing %d checkpoint(s) of an earlier run in %s (resume=False).", len(found),
                           checkpoints)
            for old in found:
                shutil.rmtree(old)
        return None
    if not found:
        logger.warning("resume=True but no checkpoint in %s: starting from the beginning.", checkpoints)
        return None
    resume_from = str(found[-1])
    expected = saved_head(base) if head == "pretrained" else head
    found_head = saved_head(resume_from)
    if found_head != expected:
        raise ValueError(f"The checkpoint {resume_from} has a {found_head!r} head, this run builds {expected!r}: "
                         f"resume with head={found_head!r}, or start afresh without resume (its checkpoints are "
                         f"then removed).")
    return resume_from


def save_or_check_manifest(checkpoints: Path, manifest: dict[str, Any], *, resuming: bool) -> None:
    """A resumed run's ``manifest`` checked against the one its checkpoints carry; a fresh run's written."""
    if resuming:
        check_resumable(checkpoints, manifest)
    else:
        checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_text(checkpoints / RUN_MANIFEST_FILE, json.dumps(manifest, indent=2))

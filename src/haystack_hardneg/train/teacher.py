"""A cross-encoder teacher's scores of each triplet row (the positive, then each negative), for distilling it into a
smaller student: computed once per teacher, length and row, in a cache every student of that teacher shares
(``$HARDNEG_TEACHER_CACHE``), and resumed after an interruption (each finished block of rows is appended as it
completes). One scoring per teacher at a time: two at once each keep their own rows, and may lose the other's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.mine.triplets import negative_columns

BLOCK_ROWS = 64


def _row_key(row: dict[str, Any], columns: list[str]) -> str:
    return hashlib.sha256("\x1e".join(str(row[c]) for c in columns).encode()).hexdigest()[:24]


def _kept_scores(path: Path) -> dict[str, list[float]]:
    """What an earlier (maybe interrupted) scoring kept; a last line cut short by the interruption is dropped."""
    kept: dict[str, list[float]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                kept[entry["key"]] = [float(s) for s in entry["scores"]]
            except (ValueError, KeyError, TypeError):
                continue
    return kept


def _folder(teacher: str) -> Path | None:
    """The teacher's local folder: the one given, or for a hub id the snapshot of its current revision in the local
    Hugging Face cache (None before it is downloaded), so that a teacher updated on the hub gets scores of its own."""
    folder = Path(teacher).expanduser()
    if folder.is_dir():
        return folder
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(teacher, "config.json")
    except ValueError:  # not a valid hub id either: loading it says what is wrong
        return None
    return Path(config).parent if isinstance(config, str) else None


def _teacher_model(teacher: str, max_length: int):
    import torch

    from haystack_hardneg.train.heads import load_torch_cross_encoder

    folder = _folder(teacher)
    return load_torch_cross_encoder(str(folder) if folder else teacher, max_length=max_length,
                                    device="cuda" if torch.cuda.is_available() else "cpu")


def candidate_groups(records: list[dict[str, Any]], negatives: list[str], top_k: int,
                     seed: int) -> list[dict[str, str]]:
    """Rows of each record's first-stage top ``top_k`` texts in seeded random groups of ``1 + len(negatives)`` (the
    first in the positive's column, which only the teacher's scores give a meaning; a remainder too small for a
    group is left out): the teacher's scores of what a student re-ranks, beside the mined rows'."""
    import random

    rng, width, rows = random.Random(seed), 1 + len(negatives), []
    for record in records:
        texts = [c["text"] for c in record["candidates"][:top_k]]
        rng.shuffle(texts)
        for start in range(0, len(texts) - width + 1, width):
            group = texts[start:start + width]
            rows.append({"query": record["query"], "positive": group[0], **dict(zip(negatives, group[1:]))})
    return rows


def teacher_scores_file(teacher: str, max_length: int, cache_dir: str | Path | None = None) -> Path:
    """The scores file of ``teacher`` (its weights: a folder's, or a hub id's revision in the local cache) truncating
    pairs at ``max_length`` tokens."""
    from haystack_hardneg.defaults import teacher_cache_dir
    from haystack_hardneg.scoring.settings import weights_fingerprint

    folder = _folder(teacher)
    identity = f"{weights_fingerprint(folder) if folder else teacher}\x1e{max_length}"
    name = f"teacher_scores-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.jsonl"
    return Path(cache_dir or teacher_cache_dir()).expanduser() / name


def with_teacher_scores(triplets, teacher: str, *, max_length: int, cache_dir: str | Path | None = None,
                        progress_bar: bool = True):
    """``triplets`` with a ``scores`` column: ``teacher``'s raw logits of (query, positive), (query, negative_i)."""
    import torch
    from tqdm.auto import tqdm

    columns = ["query", "positive", *negative_columns(triplets.column_names)]
    # A hub id not downloaded yet is fetched first: its revision's weights key the scores.
    model = _teacher_model(teacher, max_length) if _folder(teacher) is None else None
    path = teacher_scores_file(teacher, max_length, cache_dir)
    kept = _kept_scores(path)
    rows = [{c: row[c] for c in columns} for row in triplets]
    keys = [_row_key(row, columns) for row in rows]
    missing = [i for i, key in enumerate(keys) if key not in kept]
    if missing:
        if model is None:
            model = _teacher_model(teacher, max_length)
        path.parent.mkdir(parents=True, exist_ok=True)
        # What was kept, rewritten whole first: appending after a line an interruption cut short would join them.
        atomic_write_text(path, "".join(json.dumps({"key": k, "scores": v}) + "\n" for k, v in kept.items()))
        with path.open("a", encoding="utf-8") as out, tqdm(total=len(missing), desc="Teacher scores", unit="row",
                                                           disable=not progress_bar) as bar:
            for start in range(0, len(missing), BLOCK_ROWS):
                block = missing[start:start + BLOCK_ROWS]
                pairs = [(rows[i]["query"], rows[i][c]) for i in block for c in columns[1:]]
                logits = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity(),
                                       convert_to_numpy=True, show_progress_bar=False).reshape(len(block), -1)
                for i, scores in zip(block, logits):
                    kept[keys[i]] = [float(s) for s in scores]
                    out.write(json.dumps({"key": keys[i], "scores": kept[keys[i]]}) + "\n")
                out.flush()
                bar.update(len(block))
    scores = [kept[key] for key in keys]
    if "scores" in triplets.column_names:
        triplets = triplets.remove_columns("scores")
    return triplets.add_column("scores", scores)

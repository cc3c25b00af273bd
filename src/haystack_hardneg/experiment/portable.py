"""A run folder's hours of work without its bulk, to carry to another machine and resume there.

A run folder holds a Qdrant store, a BM25 index and one cross-encoder per strategy: hundreds of MB, rebuilt in
hours. What later stages and the report read, and what is slow to recompute (the first stage's lists, the mined
triplets, each re-ranker's scores and training report), is a few MB once the document and query texts, which the
data set already holds, are left out. ``export_state`` writes that into a folder; ``import_state`` puts it back
into a run folder, stage by stage where the stage's key is the one the config gives it, and checks every rebuilt
file against the original's hash. The experiment then skips what is no longer needed: the index when the first
stage and mining are done, a training when its re-ranker's scores are there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.folder import SPLITS, RunFolder
from haystack_hardneg.experiment.keys import MODELS_FILE, data_fingerprint, model_fingerprints
from haystack_hardneg.experiment.plan import read_estimates, record_estimates
from haystack_hardneg.experiment.stages import StageCache
from haystack_hardneg.experiment.state_file import FORMAT, STATE_FILE, StateError, check_paths, decompressed, read_state
from haystack_hardneg.experiment.table import Inputs, stage_table, table_keys
from haystack_hardneg.files import atomic_directory, atomic_write_bytes, atomic_write_text, confined_path, jsonl_text
from haystack_hardneg.ingest.beir import load_queries
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.mine.config import STRATEGIES
from haystack_hardneg.pipelines import prepared_documents, whole_document_chunker


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return jsonl_text(records).encode("utf-8")


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


class Texts:
    """Document and query texts as the experiment's stages wrote them, rebuilt from the data set."""

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self._documents: dict[str, str] | None = None
        self._queries: dict[str, str] | None = None

    @property
    def documents(self) -> dict[str, str]:
        if self._documents is None:
            c = self.config
            documents = prepared_documents([c.data], chunker=whole_document_chunker())
            self._documents = {d.id: document_text(d, c.meta_fields, c.separator) for d in documents}
        return self._documents

    @property
    def queries(self) -> dict[str, str]:
        if self._queries is None:
            self._queries = load_queries(Path(self.config.data) / "queries.jsonl")
        return self._queries


# A file is stored without its texts where a rebuild from the data set gives back its original bytes.
def _strip_lists(data: bytes) -> bytes:
    records = _records(data)
    for record in records:
        for kind in ("dense", "lexical"):
            for entry in record.get(kind, []):
                entry.pop("text", None)
    return _jsonl(records)


def _rebuild_lists(data: bytes, texts: Texts) -> bytes:
    records = _records(data)
    for record in records:
        for kind in ("dense", "lexical"):
            if kind in record:
                record[kind] = [{"id": e["id"], "score": e["score"], "text": texts.documents[e["id"]]}
                                for e in record[kind]]
    return _jsonl(records)


def _rebuild_triplets_from(provenance: bytes, texts: Texts) -> bytes:
    rows = []
    for pair in _records(provenance):
        row = {"query": texts.queries[pair["query_id"]], "positive": texts.documents[pair["positive_id"]]}
        row.update({f"negative_{i}": texts.documents[d] for i, d in enumerate(pair["negative_ids"], start=1)})
        rows.append(row)
    return _jsonl(rows)


def _rebuilds(rebuild: Callable[[bytes, Texts], bytes], stored: bytes, texts: Texts, original: bytes) -> bool:
    try:
        return rebuild(stored, texts) == original
    except KeyError:  # an id the data set no longer has
        return False


def _widened(config: ExperimentConfig, names) -> ExperimentConfig:
    """``config`` with every strategy among the stage ``names`` that it can name: what a run folder or a state
    holds is carried whatever --strategies says runs now (its stages and their keys need those strategies'
    settings)."""
    found = [n.split("/", 1)[1] for n in names if "/" in n]
    known = [n for n in dict.fromkeys(found) if n in STRATEGIES or n in config.variants]
    return replace(config, strategies=list(dict.fromkeys([*config.strategies, *known])))


def _how_stored(rel: str, original: bytes, folder: RunFolder, texts: Texts) -> tuple[str, bytes]:
    """How a file travels: without the texts the data set gives back byte for byte, else as it is."""
    if rel in {RunFolder.lists(split) for split in SPLITS}:
        stripped = _strip_lists(original)
        if _rebuilds(_rebuild_lists, stripped, texts, original):
            return "lists", stripped
    provenance = folder / rel.replace("/triplets.jsonl", "/provenance.jsonl")
    if rel.endswith("/triplets.jsonl") and provenance.is_file():
        if _rebuilds(_rebuild_triplets_from, provenance.read_bytes(), texts, original):
            return "triplets", b""
    return "copy", original


def export_state(config: ExperimentConfig, dest: str | Path, *, only: set[str] | None = None) -> dict[str, Any]:
    """Write the finished stages of ``config``'s run folder, without their bulk, into ``dest`` (a new folder,
    replaced whole). Reads the run folder only, so it works while the experiment runs. A training is carried only
    with its re-ranker's scores (the re-ranker itself stays behind). ``only``: these stages alone (e.g. the
    trainings of runs that share their upstream stages, carried once). Returns the state's summary."""
    config = config.resolved()
    out, dest = Path(config.out), Path(dest)
    if dest.resolve() == out.resolve() or out.resolve() in dest.resolve().parents:
        raise StateError("Export the state into a folder outside the run folder.")
    stages_path = out / "stages.json"
    if not stages_path.is_file():
        raise StateError(f"{out} has no finished stage (no stages.json).")
    records: dict[str, dict[str, Any]] = json.loads(stages_path.read_text(encoding="utf-8"))
    table, folder, texts = stage_table(_widened(config, records)), RunFolder(out), Texts(config)
    carried: dict[str, Any] = {}
    with atomic_directory(dest) as staging:
        for name, record in records.items():
            stage = table.get(name)
            if (only is not None and name not in only) or stage is None or stage.carry is None or \
                    (stage.carried_with is not None and stage.carried_with not in records):
                continue
            relative = stage.carry(folder, record)
            if not all(confined_path(out, r, named_in=stages_path).is_file() for r in relative):
                continue
            files = {}
            for rel in relative:
                original = (out / rel).read_bytes()
                how, stored = _how_stored(rel, original, folder, texts)
                entry = {"sha256": _sha256(original), "rebuild": how, "bytes": len(original)}
                if how != "triplets":
                    entry["stored"] = f"files/{rel}.gz"
                    path = staging / entry["stored"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(gzip.compress(stored, mtime=0))
                files[rel] = entry
            carried[name] = {"record": record, "files": files}
        models = out / "models.json"
        state = {"format": FORMAT, "run_folder": str(out), "stages": carried,
                 "models": json.loads(models.read_text(encoding="utf-8")) if models.is_file() else {},
                 # The plan's estimate of each stage, for the report to set beside the stage's measured time.
                 "plan_estimates": read_estimates(out)}
        atomic_write_text(staging / STATE_FILE, json.dumps(state, indent=2))
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return {"stages": sorted(carried), "bytes": size}


def import_state(config: ExperimentConfig, source: str | Path) -> dict[str, list[str]]:
    """Put the stages of an exported state into ``config``'s run folder where each one's recorded key is the key
    ``config`` gives that stage (same data, settings and upstream stages); the others are left out. Every file is
    rebuilt and checked against the original's hash before any is written; every path the state names must stay
    inside its folder (the state's for reading, the run folder's for writing), else nothing is imported. A stage
    the run folder already has finished under that key is kept as it is. Returns what was imported, already
    there, and left out."""
    config = config.resolved()
    source = Path(source)
    state, state_path = read_state(source)
    widened = _widened(config, state["stages"])
    table = stage_table(widened)
    keys = table_keys(table, Inputs(widened, data_fingerprint(config), config.load_splits()))
    changed = {p: (state["models"][p], now) for p, now in model_fingerprints(config).items()
               if p in state["models"] and state["models"][p] != now}
    if changed:
        raise StateError(f"The model folder(s) {sorted(changed)} hold other files than where {source} was computed "
                         f"(fingerprints {changed}): the imported stages would not be this machine's.")
    out = Path(config.out)
    check_paths(state, state_path, source, out)
    texts = Texts(config)
    cache = StageCache(out)
    summary: dict[str, list[str]] = {"imported": [], "already_there": [], "left_out": []}
    try:
        pending: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
        for name, entry in state["stages"].items():
            record = entry["record"]
            if keys.get(name) != record["key"]:
                summary["left_out"].append(name)
                continue
            # A stage carried without some of its outputs (a record, a training without its model) is there when
            # its record is.
            if cache.is_done(name, record["key"]) or \
                    (table[name].carried_partly and cache.records.get(name, {}).get("key") == record["key"]):
                summary["already_there"].append(name)
                continue
            pending[name] = (record, _rebuilt_files(source, entry["files"], texts))
        for name, (record, files) in pending.items():
            for rel, data in files.items():
                atomic_write_bytes(out / rel, data)
            cache.records[name] = {**record, "imported_from": str(source)}
            summary["imported"].append(name)
        if pending:
            atomic_write_text(cache.path, json.dumps(cache.records, indent=2))
            recorded = json.loads((out / MODELS_FILE).read_text()) if (out / MODELS_FILE).is_file() else {}
            atomic_write_text(out / MODELS_FILE, json.dumps({**state["models"], **recorded}, indent=2))
            record_estimates(out, {k: v for k, v in state.get("plan_estimates", {}).items() if k in pending})
    finally:
        cache.close()
    return summary


def _rebuilt_files(source: Path, files: dict[str, dict[str, Any]], texts: Texts) -> dict[str, bytes]:
    rebuilders: dict[str, Callable[[bytes, Texts], bytes]] = {"copy": lambda data, _: data, "lists": _rebuild_lists}
    # Paths were checked against the state's folder (``check_paths``) before this reads any of them.
    rebuilt: dict[str, bytes] = {}
    for rel, entry in sorted(files.items(), key=lambda item: item[1]["rebuild"] == "triplets"):
        if entry["rebuild"] == "triplets":
            provenance = rel.rsplit("/", 1)[0] + "/provenance.jsonl"
            if provenance not in rebuilt:
                raise StateError(f"{source}: {rel} is rebuilt from {provenance}, which the state lacks.")
            rebuild, stored_bytes = _rebuild_triplets_from, rebuilt[provenance]
        else:
            stored = source / entry["stored"]
            if not stored.is_file():
                raise StateError(f"{source} lacks {entry['stored']} ({rel}).")
            rebuild, stored_bytes = rebuilders[entry["rebuild"]], decompressed(stored, entry["bytes"])
        try:
            data = rebuild(stored_bytes, texts)
        except KeyError as missing:
            raise StateError(f"{rel} in {source} names {missing}, which the data set {texts.config.data} lacks: "
                             f"nothing was imported.") from None
        if _sha256(data) != entry["sha256"]:
            raise StateError(f"{rel} rebuilt from {source} differs from the file that was exported (the data set "
                             f"or the stored file changed): nothing was imported.")
        rebuilt[rel] = data
    return rebuilt

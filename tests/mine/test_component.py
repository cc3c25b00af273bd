import json
import subprocess
import sys

import numpy as np
import pytest
from haystack import Document

from haystack_hardneg import (
    ClusterNegativeMiner,
    EnsembleDocumentEmbedder,
    EnsembleDocumentWriter,
    EnsembleTextEmbedder,
    open_document_store,
)
from haystack_hardneg.ingest.beir import DataError, load_beir
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.negatives import mine_negatives
from haystack_hardneg.mine.triplets import load_triplets, write_triplets
from haystack_hardneg.options import names

from mine.synthetic import synthetic_data

MINING_OPTIONS = set(names(MiningConfig))


@pytest.fixture(scope="module")
def split(fixtures):
    return load_beir(fixtures / "scifact-tiny", "train")


def _miner(members, **kwargs):
    """A warmed-up miner; keyword arguments that are MiningConfig options go into ``mining``."""
    kwargs.setdefault("progress_bar", False)
    mining = {k: kwargs.pop(k) for k in list(kwargs) if k in MINING_OPTIONS}
    miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=members), mining=mining, **kwargs)
    miner.warm_up()
    return miner


def test_miner_reads_stored_vectors_instead_of_embedding_again(tiny_model, tiny_model_b, split):
    doc_embedder = EnsembleDocumentEmbedder(members=[tiny_model, tiny_model_b], progress_bar=False)
    doc_embedder.warm_up()
    store = open_document_store(location=":memory:", embedding_dim=80, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(doc_embedder.run(split.corpus)["documents"])

    miner = _miner([tiny_model, tiny_model_b], document_store=store, num_negatives=3, n_clusters=4,
                   rank_window=(0, 20), guard_ratio=None, guard_member_agreement=False)
    encoded = []
    for model in miner.text_embedder.encoder.backends:
        original = model.encode
        model.encode = lambda texts, *a, _o=original, **k: encoded.append(len(texts)) or _o(texts, *a, **k)
    result = miner.run(queries=split.queries, positives=split.qrels)
    assert encoded == [len(split.queries)] * 2  # queries only, once per member
    assert len(result["triplets"]) == sum(len(v) for v in split.qrels.values())
    assert set(result["triplets"][0]) == {"query", "positive", "negative_1", "negative_2", "negative_3"}
    assert result["report"]["clusters"]["count"] == 4


def test_stored_vectors_of_another_ensemble_are_refused(tiny_model, tiny_model_other_weights, split):
    # Same architecture and dimension, other weights: the store would take the query vectors without complaint.
    doc_embedder = EnsembleDocumentEmbedder(members=[tiny_model_other_weights], progress_bar=False)
    doc_embedder.warm_up()
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(doc_embedder.run(split.corpus)["documents"])
    miner = _miner([{"model": tiny_model, "query_prompt": "query: "}], document_store=store)
    with pytest.raises(ValueError, match="not be comparable"):
        miner.run(queries=split.queries, positives=split.qrels)


def test_a_store_of_chunks_is_mined_at_the_chunk_level_from_its_own_vectors(tiny_model, split):
    from haystack_hardneg import DocumentChunker

    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    chunks = DocumentChunker(split_by="word", split_length=20, split_overlap=0).run(split.corpus)["documents"]
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(embedder.run(chunks)["documents"])
    parent = {c.id: c.meta["parent_id"] for c in chunks}
    result = _miner([tiny_model], document_store=store, strategy="ensemble", num_negatives=2, guard_ratio=None).run(
        queries=split.queries, positives=split.qrels)
    assert result["report"]["skipped"]["unknown_judgements"] == 0
    query_of = {text: q for q, text in split.queries.items()}
    stored = {d.id: np.array(d.embedding) for d in store.filter_documents()}
    text_embedder = EnsembleTextEmbedder(members=[tiny_model])
    text_embedder.warm_up()
    for row, provenance in zip(result["triplets"], result["provenance"]):
        judged = split.qrels[query_of[row["query"]]]
        # The positive is a chunk of a judged document: the one the ensemble scores highest for the query.
        assert parent[provenance["positive_id"]] in judged
        own = [c.id for c in chunks if c.meta["parent_id"] == parent[provenance["positive_id"]]]
        query = np.array(text_embedder.run(row["query"])["embedding"])
        assert provenance["positive_id"] == max(own, key=lambda c: stored[c] @ query)
        # No negative is any chunk of a document judged relevant.
        assert not {parent[n] for n in provenance["negative_ids"]} & {d for d, g in judged.items() if g > 0}


def test_unknown_judgements_are_an_error_or_skipped_and_counted(tiny_model, split):
    first = next(iter(split.qrels))
    positives = {**split.qrels, "ghost-query": [split.corpus[0].id], first: ["no-such-doc", *split.qrels[first]]}
    with pytest.raises(DataError, match="ghost-query"):
        _miner([tiny_model]).run(queries=split.queries, positives=positives, documents=split.corpus)
    result = _miner([tiny_model], on_missing="skip", guard_ratio=None, num_negatives=2).run(
        queries=split.queries, positives=positives, documents=split.corpus)
    assert result["report"]["skipped"]["unknown_judgements"] == 2
    assert result["report"]["pairs"] == sum(len(v) for v in split.qrels.values())


def test_documents_given_to_run_are_embedded_when_they_carry_no_vectors(tiny_model, split):
    result = _miner([tiny_model], strategy="ensemble", num_negatives=2, guard_ratio=None).run(
        queries=split.queries, positives=split.qrels, documents=split.corpus + [Document(id="empty", content="")])
    negatives = {row[f"negative_{i}"] for row in result["triplets"] for i in (1, 2)}
    assert negatives and "" not in negatives


def test_miner_round_trips_to_dict(tiny_model, tmp_path):
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=[tiny_model]), document_store=store,
                                 mining={"strategy": "ensemble", "num_negatives": 7, "rank_window": (2, 40),
                                         "guard_ratio": None, "seed": 4, "lexical_weight": 0.3},
                                 meta_fields_to_embed=["title"], on_missing="skip")
    data = miner.to_dict()
    restored = ClusterNegativeMiner.from_dict(data)
    assert restored.to_dict() == data
    assert restored.config == miner.config


def test_dense_strategy_needs_a_real_member(tiny_model):
    with pytest.raises(ValueError, match="member=2"):
        ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=[tiny_model]),
                             mining={"strategy": "dense", "member": 2})


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_triplet_files_load_as_a_dataset_with_provenance_beside(tmp_path, file_format):
    data = synthetic_data()
    result = mine_negatives(data, MiningConfig(strategy="ensemble_cluster", num_negatives=3, n_clusters=8,
                                               guard_ratio=None), progress_bar=False)
    paths = write_triplets(tmp_path, result, dict(zip(data.query_ids, data.query_texts)),
                           dict(zip(data.doc_ids, data.doc_texts)), file_format=file_format)
    dataset = load_triplets(paths["triplets"])
    assert dataset.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3"]
    assert len(dataset) == len(result.pairs)
    # With the teacher: the ensemble's scores of each row, from the provenance beside.
    taught = load_triplets(paths["triplets"], teacher_scores=True)
    assert taught.column_names == dataset.column_names + ["scores"]
    assert taught["scores"] == [[p.positive_score, *p.negative_scores] for p in result.pairs]
    provenance = [json.loads(line) for line in paths["provenance"].read_text().splitlines()]
    assert [p["negative_ids"] for p in provenance] == [p.negative_ids for p in result.pairs]
    assert provenance[0]["strategy"] == "ensemble_cluster"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_mined_triplets_train_a_cross_encoder_without_conversion(tiny_model, tmp_path):
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    data = synthetic_data()
    result = mine_negatives(data, MiningConfig(strategy="ensemble", num_negatives=2, guard_ratio=None),
                            progress_bar=False)
    paths = write_triplets(tmp_path / "mined", result, dict(zip(data.query_ids, data.query_texts)),
                           dict(zip(data.doc_ids, data.doc_texts)))
    model = CrossEncoder(tiny_model, num_labels=1)
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4,
                                         report_to="none", save_strategy="no", logging_steps=1)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=load_triplets(paths["triplets"]),
                                  loss=MultipleNegativesRankingLoss(model))
    output = trainer.train()
    assert output.global_step == 3


def test_mine_command_writes_every_strategy(tiny_model, fixtures, split, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "haystack_hardneg.cli", "mine", "--data", str(fixtures / "scifact-tiny"), "--model",
         tiny_model, "--num-negatives", "2", "--n-clusters", "4", "--guard-ratio", "none", "--cache-dir", "none",
         "--lexical-weight", "0.5", "--out", str(tmp_path / "mined")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for strategy in ["ensemble_cluster", "ensemble", "dense", "bm25", "random"]:
        report = json.loads((tmp_path / "mined" / strategy / "report.json").read_text())
        assert report["pairs"] == sum(len(v) for v in split.qrels.values())
        assert (tmp_path / "mined" / strategy / "triplets.jsonl").stat().st_size > 0
        # --lexical-weight reaches the ensemble strategies and leaves the baselines as they are.
        assert report["config"]["lexical_weight"] == (0.5 if strategy.startswith("ensemble") else None)
    assert "| ensemble_cluster |" in (tmp_path / "mined" / "mining_report.md").read_text()
    assert "Mining (bm25)" in done.stderr
    candidates = load_candidates(tmp_path / "mined" / "candidates.jsonl")
    assert {r["query_id"] for r in candidates} == set(split.qrels)
    assert all(len(r["candidates"]) == 30 for r in candidates)  # --candidates-k default; the corpus has 40


def test_the_command_and_the_component_mine_the_same_negatives(tiny_model, fixtures, split, tmp_path):
    """One path per step: the mine command and ClusterNegativeMiner.run go through the same mining job."""
    from haystack_hardneg.cli import main
    from haystack_hardneg.files import read_jsonl

    options = {"strategy": "ensemble_cluster", "num_negatives": 2, "n_clusters": 4, "rank_window": (1, 30),
               "lexical_weight": 0.3, "seed": 3}
    assert main(["mine", "--data", str(fixtures / "scifact-tiny"), "--model", tiny_model, "--strategy",
                 "ensemble_cluster", "--num-negatives", "2", "--n-clusters", "4", "--rank-window", "1", "30",
                 "--lexical-weight", "0.3", "--seed", "3", "--cache-dir", "none", "--out", str(tmp_path / "m")]) == 0
    result = _miner([tiny_model], meta_fields_to_embed=["title"], embedding_separator=" ", **options).run(
        queries=split.queries, positives=split.qrels, documents=split.corpus)
    folder = tmp_path / "m" / "ensemble_cluster"
    assert read_jsonl(folder / "triplets.jsonl") == result["triplets"]
    assert read_jsonl(folder / "provenance.jsonl") == result["provenance"]
    written, returned = json.loads((folder / "report.json").read_text()), json.loads(json.dumps(result["report"]))
    assert {k: v for k, v in written.items() if k != "seconds"} == {k: v for k, v in returned.items() if k != "seconds"}


def test_candidates_are_each_query_ranked_first_stage_with_its_positives(tiny_model, split):
    result = _miner([tiny_model], guard_ratio=None, num_negatives=2, candidates_k=5).run(
        queries=split.queries, positives=split.qrels, documents=split.corpus)
    records = result["candidates"]
    assert {r["query_id"] for r in records} == set(split.qrels)
    for record in records:
        scores = [c["score"] for c in record["candidates"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert set(record["positive_ids"]) == {d for d, g in split.qrels[record["query_id"]].items() if g > 0}
        assert record["query"] == split.queries[record["query_id"]]
    assert _miner([tiny_model], candidates_k=0).run(
        queries=split.queries, positives=split.qrels, documents=split.corpus)["candidates"] == []


def test_mine_command_refuses_a_lexical_weight_nothing_would_use(tiny_model, fixtures, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "haystack_hardneg.cli", "mine", "--data", str(fixtures / "scifact-tiny"), "--model",
         tiny_model, "--strategy", "bm25", "--lexical-weight", "0.5", "--cache-dir", "none",
         "--out", str(tmp_path / "mined")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0 and "--lexical-weight changes only" in done.stderr
    assert not (tmp_path / "mined").exists()
    # Every strategy's settings are checked against the ensemble before anything is embedded, not the first only.
    done = subprocess.run(
        [sys.executable, "-m", "haystack_hardneg.cli", "mine", "--data", str(fixtures / "scifact-tiny"), "--model",
         tiny_model, "--strategy", "all", "--member", "3", "--cache-dir", "none", "--out", str(tmp_path / "mined")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0 and "member=3 but the ensemble has 1 member(s)" in done.stderr
    assert "Embedding" not in done.stderr and not (tmp_path / "mined").exists()


def test_mine_skip_missing_counts_every_dropped_judgement(tiny_model, fixtures, tmp_path):
    import shutil

    from haystack_hardneg.cli import main

    data = tmp_path / "data"
    shutil.copytree(fixtures / "scifact-tiny", data)
    with (data / "qrels" / "test.tsv").open("a") as qrels:
        qrels.write("no-such-query\tghost\t1\n")  # an unknown query and document
        first = (fixtures / "scifact-tiny" / "qrels" / "test.tsv").read_text().splitlines()[1].split("\t")[0]
        qrels.write(f"{first}\tno-such-document\t1\n")
    common = ["mine", "--data", str(data), "--split", "test", "--model", tiny_model, "--strategy", "random",
              "--num-negatives", "2", "--cache-dir", "none"]
    assert main([*common, "--out", str(tmp_path / "strict")]) == 2  # one line, exit 2: the data names unknown ids
    assert main([*common, "--skip-missing", "--out", str(tmp_path / "m")]) == 0
    report = json.loads((tmp_path / "m" / "random" / "report.json").read_text())
    assert report["skipped"]["unknown_judgements"] == 2

"""haystack-hardneg: ensemble embeddings, hard-negative mining and fine-tuned re-rankers for Haystack.

Importing this package adds ``haystack_hardneg`` to Haystack's deserialization allowlist, so YAML pipelines
naming our components load with a plain ``Pipeline.loads`` after ``import haystack_hardneg``.
Without the import, pass ``allowed_modules=["haystack_hardneg"]`` or set
``HAYSTACK_DESERIALIZATION_ALLOWLIST=haystack_hardneg``; see the README.
"""

__version__ = "0.2.0.dev0"

from haystack.core.serialization_security import allow_deserialization_module

from haystack_hardneg.embed.components import EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.embed.ensemble import MemberSpec

# Last: the experiment builds on the components above.
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.runner import Experiment
from haystack_hardneg.export.config import ExportConfig
from haystack_hardneg.export.job import export_model
from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
from haystack_hardneg.mine.component import ClusterNegativeMiner
from haystack_hardneg.pipelines import build_indexing_pipeline, build_query_pipeline, load_pipeline
from haystack_hardneg.rank.ranker import CrossEncoderRanker
from haystack_hardneg.store.lexical_components import HybridJoiner, LexicalIndexWriter, LexicalRetriever
from haystack_hardneg.store.qdrant import EnsembleDocumentWriter, open_document_store
from haystack_hardneg.train.component import TripletTrainer

allow_deserialization_module("haystack_hardneg")

__all__ = [
    "ClusterNegativeMiner",
    "CrossEncoderRanker",
    "CorpusConverter",
    "DocumentChunker",
    "EnsembleDocumentEmbedder",
    "EnsembleDocumentWriter",
    "EnsembleTextEmbedder",
    "Experiment",
    "ExperimentConfig",
    "ExportConfig",
    "HybridJoiner",
    "LexicalIndexWriter",
    "LexicalRetriever",
    "MemberSpec",
    "TripletTrainer",
    "build_indexing_pipeline",
    "build_query_pipeline",
    "export_model",
    "load_pipeline",
    "open_document_store",
]

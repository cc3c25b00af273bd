"""Serving the re-ranked search through Hayhooks, the Haystack project's server.

    pip install "haystack-hardneg[serve]"          # haystack-hardneg with Hayhooks
    HARDNEG_PIPELINE=examples/query_pipeline_ranked.yml hayhooks run --pipelines-dir examples/hayhooks
    curl -X POST localhost:1416/ranked_search/run -H 'Content-Type: application/json' \
         -d '{"query": "what does the warranty cover?", "top_k": 5}'

Hayhooks loads YAML within Haystack's deserialization allowlist and does not extend it: this wrapper imports
haystack_hardneg, which adds the package to the allowlist in the server's process, so a YAML naming our components
loads. (A YAML deployed without a wrapper needs HAYSTACK_DESERIALIZATION_ALLOWLIST=haystack_hardneg in the server's
environment instead.) The pipeline is any query pipeline with an `embedder` and our `ranker`; point
HARDNEG_PIPELINE at yours, e.g. the one `haystack-hardneg tune` wrote.
"""

import os
from pathlib import Path

from hayhooks import BasePipelineWrapper
from haystack import Pipeline

import haystack_hardneg  # noqa: F401  (adds haystack_hardneg to the deserialization allowlist)

DEFAULT_PIPELINE = Path(__file__).resolve().parents[2] / "query_pipeline_ranked.yml"


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        path = Path(os.environ.get("HARDNEG_PIPELINE", DEFAULT_PIPELINE)).expanduser()
        self.pipeline = Pipeline.loads(path.read_text(encoding="utf-8"))
        self.pipeline.warm_up()  # the models load once, at deployment, not on the first request
        self.ranker = next(name for name, component in self.pipeline.walk()
                           if type(component).__name__ == "CrossEncoderRanker")

    def run_api(self, query: str, top_k: int = 5) -> list[dict]:
        """The query's documents, re-ranked: id, score, the cross-encoder's own score, content and meta."""
        inputs = {"embedder": {"text": query}, self.ranker: {"query": query, "top_k": top_k}}
        documents = self.pipeline.run(inputs)[self.ranker]["documents"]
        return [{"id": d.id, "score": d.score, "cross_encoder_score": d.meta.get("cross_encoder_score"),
                 "content": d.content, "meta": d.meta} for d in documents]

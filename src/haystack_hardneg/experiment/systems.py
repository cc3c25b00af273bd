"""The names of the report's reference systems and the metrics it tests: shared by its tables and charts."""

TESTED_METRICS = ("ndcg@10", "mrr@10")
FIRST_STAGE = "first stage"
DENSE_ONLY = "(dense ensemble alone)"
LEXICAL_ONLY = "(BM25 alone)"

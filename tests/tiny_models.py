"""Tiny random sentence-transformers models built in the test session (no downloads, seconds to build).

They are real models (BERT + mean pooling, saved in the sentence-transformers format), only small and
untrained, so every code path that loads and runs a model is exercised for real.
"""

from __future__ import annotations

import re
from pathlib import Path

# Larger random weights than the usual 0.02 spread untrained embeddings apart (cosines ~0.6-0.9, not ~0.95).
# Models that are trained keep BERT's 0.02: with large weights the pooler's tanh saturates and nothing learns.
INIT_RANGE = 1.0

WORDS = """
the a of and to in is that for on with as by are from this be or an at it was which were not have
cells protein gene cancer patients study results disease treatment expression risk mice blood brain
virus infection vaccine drug dose trial effect increased reduced levels human clinical response immune
heart cardiac liver kidney lung tumor growth signaling receptor pathway mutation dna rna binding activity
cats dogs purr bark pets animals manuals policies support notes search rerank hard negative query document
""".split()


def _vocabulary() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    pieces = [f"##{c}" for c in letters]
    punctuation = list(".,;:!?()-'\"/%")
    return special + sorted(set(WORDS)) + letters + pieces + punctuation


def build_tiny_sentence_transformer(folder: Path, *, seed: int = 0, hidden: int = 32,
                                    init_range: float = INIT_RANGE) -> Path:
    """A 2-layer BERT sentence encoder with a small word-piece vocabulary, saved to ``folder``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    raw = folder.with_name(folder.name + "-hf")
    raw.mkdir(parents=True, exist_ok=True)
    vocab = _vocabulary()
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        initializer_range=init_range,
    )
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(folder))
    return folder


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))

"""Scoring helpers several steps share (no Haystack): fusing a first stage's scores with a re-ranker's, and the
settings a training run stores beside its re-ranker (``hardneg.json``). Below mining, training, ranking and export."""

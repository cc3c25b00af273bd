"""The user's own query pipeline measured on labelled queries (``evaluate``), and the ranker's fusion weight chosen
for it (``tune``)."""

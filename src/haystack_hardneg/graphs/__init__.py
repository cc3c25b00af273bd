"""Model graphs outside torch: a sentence-transformers model's transformer converted to ONNX and OpenVINO (and to
int8), and those graphs run. Shared by the ranker's export and the ensemble's members, below both."""

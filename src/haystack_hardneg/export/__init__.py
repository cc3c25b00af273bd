"""Fast serving: a fine-tuned cross-encoder exported to ONNX Runtime or OpenVINO (optionally int8), checked against
the fp32 model on its validation candidates, and run without torch's overhead (no Haystack here)."""

"""The served artefact: ONNX export and its speed model."""

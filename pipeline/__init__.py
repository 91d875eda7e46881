"""The training pipeline: one module per DVC stage, data handed over through files."""

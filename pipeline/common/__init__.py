"""Shared plumbing: configs, JSON lines, MLflow tracking."""

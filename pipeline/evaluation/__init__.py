"""Judging a model: calibration and thresholds, turn and replay metrics, gates, plots."""

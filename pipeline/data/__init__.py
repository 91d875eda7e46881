"""Data: sources and their adapters, normalisation, deduplication, split files, the data report."""

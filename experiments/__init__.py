"""Experiments outside the product path: they read the pipeline, nothing in it reads them."""

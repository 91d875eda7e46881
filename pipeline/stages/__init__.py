"""One short script per DVC stage (dvc.yaml); stages hand data over only through files."""

"""Training a mention embedder on a category dictionary (the ``train-embedder`` job's core)."""

"""The pipeline's halves, which every job entry point calls; no entry point imports another.

``detect``: the models' half (documents -> mentions, errors, documents, embeddings);
``cluster``: the driver-side half (k search, clusters, summary, aggregates, report, plots);
``assign``: a saved cluster model's clusters instead; ``run``: all of it; ``cluster_model``:
reading and writing ``cluster_model/``; ``derived``: an output made from an earlier run's folder.
"""

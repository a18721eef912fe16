"""The DataFrame transforms of the jobs, usable directly from a notebook.

>>> from group_appeal_spark import detect_appeals, embed_mentions, cluster_mentions
>>> appeals = detect_appeals(docs_df, config)            # mentions + errors DataFrames
>>> embeddings = embed_mentions(appeals.mentions, config)
>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames
>>> summary = cluster_summary(clusters.clusters, appeals.mentions)  # one row per cluster
>>> assigned = assign_clusters(embeddings, "out/cluster_model")  # saved centroids, no refit

Transforms do no I/O of their own: reading and writing are in ``jobs/storage/``.
"""

from group_appeal_spark.jobs.transforms.appeals import (  # noqa: F401
    AppealsResult,
    detect_appeals,
    distinct_mentions,
    embed_mentions,
    prepare_documents,
)
from group_appeal_spark.jobs.transforms.clusters import (  # noqa: F401
    ClusterResult,
    assign_clusters,
    cluster_mentions,
    cluster_summary,
)

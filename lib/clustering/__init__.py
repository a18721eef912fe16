"""Driver-side clustering, Spark-free.

``kmeans`` (count-weighted k-means), ``search`` (the k search, weighted silhouette, best k),
``nmi`` (NMI against dictionary categories), ``rules`` (which k to fit for how many unique
mentions), ``checks`` (input checks), ``dictionary`` (the category dictionary), ``summary``
(one row per cluster: size, top and central mentions, stance shares, category, label), ``plots``.
"""

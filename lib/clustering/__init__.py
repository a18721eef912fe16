"""Driver-side clustering: count-weighted k-means, silhouette, the k search, the category dictionary and plots."""

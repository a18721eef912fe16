"""Validation of the models against hand-coded segments, Spark-free.

``sampling`` (stratified allocation of the segments to code and their inclusion probabilities),
``codes`` (reading the coding sheet's gold cells), ``metrics`` (accuracy of the models on the
coded sample, with stratified bootstrap intervals), ``dsl`` (per-group estimates corrected for
the models' error by design-based supervised learning, computed from Spark's sums) and
``simulation`` (the coverage simulation of ``bench/dsl_coverage.py``).
"""

"""Tiny random models of the real architectures, laid out as an offline hub cache (tests, ``--tiny-models``)."""

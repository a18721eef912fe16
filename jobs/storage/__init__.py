"""The jobs' I/O: the filesystem interface, the document readers, the output tables, a run's state.

``filesystem``: one interface over a classic session's Hadoop FileSystem and a Connect
session's routes; ``readers``: documents in; ``tables``: output checks and atomic table writes;
``run_state``: the completion marker, the resume fingerprint and the chunk checkpoints.
"""

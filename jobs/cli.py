"""The ``group-appeal-spark`` console command: one subcommand per job.

Each subcommand is the ``main(argv)`` of a module in ``jobs/``, so
``group-appeal-spark run ...`` and ``spark-submit jobs/run.py ...`` take the same flags.
"""

from __future__ import annotations

import importlib
import sys

JOBS = {
    "run": ("group_appeal_spark.jobs.run", "documents -> mentions with stance -> embeddings -> clusters"),
    "detect": ("group_appeal_spark.jobs.detect", "documents -> mentions with stance, and mention embeddings"),
    "cluster": ("group_appeal_spark.jobs.cluster", "mention embeddings -> k search and clusters"),
    "assign": ("group_appeal_spark.jobs.assign", "mention embeddings -> the clusters of a saved cluster model"),
    "stream": ("group_appeal_spark.jobs.stream", "new files or rows only -> the same tables and clusters, exactly once"),
    "sample": ("group_appeal_spark.jobs.sample", "a run's segments -> a stratified coding sheet for validation"),
    "validate": ("group_appeal_spark.jobs.validate", "a coded sheet -> accuracy and error-corrected estimates"),
    "fetch-models": ("group_appeal_spark.jobs.fetch_models", "snapshot the models for clusters without internet"),
    "train-embedder": ("group_appeal_spark.jobs.train_embedder", "train a mention embedder on a category dictionary"),
}


def _usage() -> str:
    lines = ["usage: group-appeal-spark <job> [options]   (group-appeal-spark <job> --help for a job's options)", "",
             "jobs:"]
    lines += [f"  {name:<15} {summary}" for name, (_, summary) in JOBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from group_appeal_spark import __version__

        print(__version__)
        return 0
    if argv[0] not in JOBS:
        print(f"group-appeal-spark: unknown job {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(JOBS[argv[0]][0])
    return module.main(argv[1:])


def console_main(argv: list[str] | None = None) -> None:
    """The console entry point: a failed job raises ``SystemExit`` with its non-zero code.

    Databricks' ``python_wheel_task`` calls the entry point function and ignores what it
    returns, so a job that only returned 2 would leave the task green; an exception (here
    ``SystemExit(2)``) fails it. The ``group-appeal-spark`` script exits with the same code.
    """
    code = main(argv)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())

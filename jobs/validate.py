"""validate: the models' accuracy on a hand-coded sample, and estimates corrected for their error.

    group-appeal-spark validate --input out/ --codes sheet/sheet.csv --output validation/

Reads the coding sheet written by ``sample`` and filled by a coder (rows left uncoded are
skipped and counted; a malformed cell, an unknown stance or a gold span not in its sentence is
reported with its sample_id) and the run's ``segments/`` and ``mentions/``; writes
``<output>/metrics.json`` (has-mention, mention and stance precision, recall, F1, accuracy with
95% bootstrap intervals, weighted by 1/pi), ``<output>/corrected`` (per group and measure: the
models' estimate, the design-based supervised learning estimate, its standard error and 95%
interval) and ``<output>/report.html``. See docs/validation.md.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline.validate import ValidateRequest, validate_job
from group_appeal_spark.lib.choices import OutputFormat
from group_appeal_spark.lib.errors import InputError

FLAGS = (
    flags.Flag("--input", "output folder of `run` or `detect` the sheet was drawn from", options={"required": True}),
    flags.Flag("--codes", "the coded sheet (sheet.csv written by `sample`, gold columns filled)",
               options={"required": True}),
    flags.Flag("--output", "folder for metrics.json, corrected/ and report.html", options={"required": True}),
    flags.Flag("--group-by", "comma-separated carried columns the corrected estimates are made for, e.g. party; "
               "default: the run's output.group_by, else every carried column"),
    flags.Flag("--min-coded", "fewest coded segments a group needs for a corrected estimate (default 30)",
               options={"type": int, "default": 30}),
    flags.Flag("--bootstrap", "bootstrap replicates of the metrics' intervals (default 1000)",
               options={"type": int, "default": 1000}),
    flags.Flag("--seed", "seed of the bootstrap (default 7)", options={"type": int, "default": 7}),
    flags.Flag("--output-format", "format of corrected/: parquet (default) | delta | orc | json | csv ...",
               options={"default": "parquet"}),
    flags.Flag("--overwrite", "replace an earlier validation in --output", options={"action": "store_true"}),
)


def build_parser():
    return flags.tool_parser("validate", __doc__, FLAGS)


def request(args) -> ValidateRequest:
    """The checked request: every flag's value, before the session starts."""
    if args.min_coded < 2:
        raise InputError(f"--min-coded: {args.min_coded}; a standard error needs at least 2 coded segments")
    if args.bootstrap < 1:
        raise InputError(f"--bootstrap: {args.bootstrap}; give at least 1 replicate (1000 is usual)")
    group_by = None if args.group_by is None else tuple(g.strip() for g in args.group_by.split(",") if g.strip())
    return ValidateRequest(args.input, args.codes, args.output, group_by, args.min_coded, args.bootstrap, args.seed,
                           OutputFormat.parse(args.output_format, key="--output-format").value, args.overwrite)


def main(argv=None) -> int:
    def body(args):
        req = request(args)
        config = flags.tool_config(args)
        validate_job(startup.session(config, "group-appeal-spark validate", args.master), req)

    return startup.run_main("validate", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())

"""sample: a stratified random sample of a run's segments, as a coding sheet for hand-coding.

    group-appeal-spark sample --input out/ --n 600 --strata party,has_mention --seed 7 --output sheet/

Reads ``<input>/segments`` (and ``<input>/mentions``) of a finished ``run`` or ``detect`` and
writes ``<output>/sheet.csv`` (UTF-8 with a byte order mark, so Excel opens it; one row per
sampled segment: sample_id, doc_id, seg_idx, stratum, pi, segment_text, predicted, and the empty
coder columns gold_has_mention and gold_mentions) and ``<output>/sample.json`` (the design:
population and n per stratum, the seed, the run it was drawn from). Fill the two gold columns,
then run ``validate``. The draw is reproducible from the seed. See docs/validation.md.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline.sample import SampleRequest, sample_job
from group_appeal_spark.lib.choices import Allocation
from group_appeal_spark.lib.errors import InputError

FLAGS = (
    flags.Flag("--input", "output folder of `run` or `detect` (holds segments/)", options={"required": True}),
    flags.Flag("--output", "folder for sheet.csv and sample.json", options={"required": True}),
    flags.Flag("--n", "segments to sample in all", options={"type": int, "required": True}),
    flags.Flag("--strata", "comma-separated stratum columns: carried columns of segments/ and has_mention "
               "(1 where the models found a mention), e.g. party,has_mention; default: one stratum"),
    flags.Flag("--allocation", "proportional (default: each stratum its share of the segments) | equal (the same "
               "number per stratum); every stratum gets at least one", options={"default": "proportional"}),
    flags.Flag("--seed", "seed of the draw (default 7): the same seed draws the same segments",
               options={"type": int, "default": 7}),
    flags.Flag("--blind", "leave the models' predictions out of the sheet", options={"action": "store_true"}),
    flags.Flag("--overwrite", "replace an earlier sample in --output (refused where its sheet has coded rows)",
               options={"action": "store_true"}),
)


def build_parser():
    return flags.tool_parser("sample", __doc__, FLAGS)


def request(args) -> SampleRequest:
    """The checked request: every flag's value, before the session starts."""
    if args.n < 1:
        raise InputError(f"--n: {args.n}; give the number of segments to sample, at least 1")
    strata = tuple(s.strip() for s in (args.strata or "").split(",") if s.strip())
    return SampleRequest(args.input, args.output, args.n, strata,
                         Allocation.parse(args.allocation, key="--allocation").value, args.seed, args.blind,
                         args.overwrite)


def main(argv=None) -> int:
    def body(args):
        req = request(args)
        config = flags.tool_config(args)
        sample_job(startup.session(config, "group-appeal-spark sample", args.master), req)

    return startup.run_main("sample", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())

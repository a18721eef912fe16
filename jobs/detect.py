"""detect: documents -> mentions with stance, errors, and the distinct mentions' embeddings.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/detect.py \\
        --input docs.parquet --output out/ [--text-col text --id-col id --carry-cols party,date]

Writes ``<output>/mentions``, ``<output>/errors``, ``<output>/mention_embeddings`` and
``<output>/summary.json``. ``cluster`` then works from ``mention_embeddings`` without the models.
"""

import argparse
import sys

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401 - run as a file from a checkout

from group_appeal_spark.jobs import _common, io
from group_appeal_spark.jobs.pipeline import detect_appeals, embed_mentions
from group_appeal_spark.lib.bundle import ModelBundle
from group_appeal_spark.lib.errors import GroupAppealSparkError

log = _common.log


def add_input_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input and output")
    g.add_argument("--input", help="documents: a file or folder (input.path)")
    g.add_argument("--output", help="output folder (output.path)")
    g.add_argument("--input-format", help="parquet | csv | json (JSON lines) | text (one document a line) | delta ...")
    g.add_argument("--text-col", help="column with the document text (default text)")
    g.add_argument("--id-col", help="document id column (default id; stable ids are generated when absent)")
    g.add_argument("--carry-cols", help="comma-separated input columns copied to every output row, e.g. party,date")
    g.add_argument("--segmentation", help="sentence (default) | none: what one model input is")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="group-appeal-spark detect", description=__doc__.split("\n\n")[0],
        epilog="Output tables and columns: see README.md, section 'Outputs'.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_args(parser)
    _common.add_model_args(parser)
    _common.add_common_args(parser)
    return parser


def resolve_models(config, timer: _common.StageTimer) -> ModelBundle:
    """Find every model before Spark starts, so a missing one fails the job in seconds."""
    with timer.stage("resolve-models"):
        return ModelBundle.resolve(config)


def run_detect(spark, config, bundle: ModelBundle, timer: _common.StageTimer) -> dict:
    """The models' half of the pipeline; returns the counts for summary.json."""
    out, fmt, mode = config.output.path, config.output.format, config.output.mode
    docs = io.read_documents(spark, config.input)
    with timer.stage("detect"):
        appeals = detect_appeals(docs, config, bundle=bundle)
        counts = appeals.documents.selectExpr(
            "count(*) AS documents", "count(error) AS errors", "coalesce(sum(n_mentions), 0) AS mentions",
            "coalesce(sum(n_segments), 0) AS segments").first().asDict()
        io.write_table(appeals.mentions, io.join_path(out, "mentions"), fmt, mode)
        io.write_table(appeals.errors, io.join_path(out, "errors"), fmt, mode)
    timer.done("detect", counts["documents"], "documents")
    n_input = docs.count()
    if n_input != counts["documents"]:
        raise GroupAppealSparkError(
            f"reconciliation failed: {n_input} input rows but {counts['documents']} processed or reported")
    with timer.stage("embed"):
        mentions = io.read_table(spark, io.join_path(out, "mentions"), fmt)
        io.write_table(embed_mentions(mentions, config, bundle=bundle),
                       io.join_path(out, "mention_embeddings"), fmt, mode)
        unique = io.read_table(spark, io.join_path(out, "mention_embeddings"), fmt).count()
    timer.done("embed", unique, "unique mentions")
    return {"input_rows": n_input, "documents_ok": counts["documents"] - counts["errors"],
            "documents_with_errors": counts["errors"], "segments": counts["segments"],
            "mentions": counts["mentions"], "unique_mentions": unique}


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        config = _common.config_from_args(args)
        timer = _common.StageTimer()
        bundle = resolve_models(config, timer)
        spark = _common.build_session(config, "group-appeal-spark detect", args.master)
        io.check_output_free(spark, config.output.path, config.output.mode)
        counts = run_detect(spark, config, bundle, timer)
        io.put_text(spark, _common.summary_json({**counts, "stage_seconds": timer.seconds,
                                                 "config": config.to_dict()}),
                    io.join_path(config.output.path, "summary.json"))
        log.info("detect: done: %s", counts)

    return _common.run_main("detect", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())

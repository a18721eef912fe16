"""Train a mention embedder on a social group dictionary (no Spark needed).

Run it as::

    group-appeal-spark train-embedder --dictionary bench/data/social_groups_dictionary.csv \\
        --output models/my_embedder --base-model bert-base-uncased --epochs 10

or, from a checkout, ``python jobs/train_embedder.py --dictionary ... --output ...``
(``--out`` is accepted as an alias of ``--output``). The folder it
writes has the layout of ``maxwlnd/cl_mention_embedding`` plus the encoder's ``config.json`` and a
``training_report.json`` / ``training_report.md``; use it in the pipeline with::

    group-appeal-spark run ... --set models.embedder.local_dir=DIR \\
        --set models.embedder_config.local_dir=DIR
"""

from __future__ import annotations

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

import argparse
import logging

PROG = "train-embedder"

DESCRIPTION = """\
Train a mention embedder (encoder + 128-d projection read at the mask token of the prompt
"Social group of {mention} is: [MASK].") on a social group dictionary, with the triplet recipe
of maxwlnd/cl_mention_embedding: the anchor is a dictionary term, the positive another term of
its category, the negative a term of another category mined among the batch by the current
embeddings (hard negative mining: by default the nearest one that is still farther than the
positive, with --negative-mining batch_hard always the nearest); triplet loss with a margin on
L2-normalised embeddings.

The dictionary is a CSV whose columns are categories and whose cells are terms (the format of
the k search). Wildcard terms are used as their stem when it is a whole word (farm* -> farm) and
skipped otherwise; a share of each category's terms is held out to measure the triplet accuracy
(early stopping) and the NMI of k-means clusters before and after training.
"""

EPILOG = """\
Use the result in the pipeline:
  group-appeal-spark run ... --set models.embedder.local_dir=DIR --set models.embedder_config.local_dir=DIR
(DIR is the --output folder, also spelled --out: it holds the tokenizer, model.safetensors and the
encoder's config.json).
With the default base model (bert-base-uncased) it is also a drop-in replacement for
maxwlnd/cl_mention_embedding in group-appeal-detector.
"""


def build_parser() -> argparse.ArgumentParser:
    from group_appeal_spark.lib.choices import NegativeMining
    from group_appeal_spark.lib.training.config import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dictionary", required=True, metavar="CSV",
                   help="dictionary CSV: categories as columns, terms as cells")
    # --output as in run, detect and cluster; --out, the first name of the flag, still works.
    p.add_argument("--output", "--out", dest="output", required=True, metavar="DIR",
                   help="output folder (must be empty or new unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --output folder")
    p.add_argument("--base-model", metavar="ID_OR_DIR", default=None,
                   help="hub id or local folder of a BERT-family encoder with safetensors weights "
                        "(default: bert-base-uncased)")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of --base-model")
    p.add_argument("--init-embedder", metavar="DIR", default=None,
                   help="continue training an embedder folder in the cl_mention_embedding layout instead of "
                        "starting from --base-model")
    p.add_argument("--init-embedder-config", metavar="DIR", default=None,
                   help="folder with that embedder's encoder config.json (default: --init-embedder)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"most epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"anchors per step (default {d.batch_size})")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate,
                   help=f"encoder learning rate (default {d.learning_rate})")
    p.add_argument("--projection-learning-rate", type=float, default=d.projection_learning_rate,
                   help=f"projection learning rate (default {d.projection_learning_rate})")
    p.add_argument("--margin", type=float, default=d.margin, help=f"triplet margin (default {d.margin})")
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction,
                   help=f"share of each category's terms held out (default {d.validation_fraction})")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"early stopping patience in epochs, 0 = off (default {d.patience})")
    p.add_argument("--negative-mining", default=d.negative_mining, choices=[m.value for m in NegativeMining],
                   help=f"negative mining in the batch (default {d.negative_mining})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--device", default=d.device, help=f"cpu, cuda, cuda:N, mps or auto (default {d.device})")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.add_argument("--mlflow", action="store_true", help="log the training to MLflow (the mlflow extra): its "
                   "settings, per-epoch and before/after metrics, training_report.json; a failure is one warning")
    p.add_argument("--mlflow-experiment", metavar="NAME", default=None,
                   help="experiment of the MLflow run (default: MLflow's choice); an active run is logged to instead")
    return p


def main(argv: list[str] | None = None) -> int:
    from group_appeal_spark.lib.errors import GroupAppealSparkError
    from group_appeal_spark.lib.training import TrainConfig, train_embedder

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = TrainConfig(
            margin=args.margin,
            learning_rate=args.learning_rate,
            projection_learning_rate=args.projection_learning_rate,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_fraction=args.validation_fraction,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
            negative_mining=args.negative_mining,
        )
        trainer = train_embedder(
            args.dictionary,
            args.output,
            config,
            base_model=args.base_model,
            revision=args.revision,
            init_embedder=args.init_embedder,
            init_embedder_config=args.init_embedder_config,
            overwrite=args.overwrite,
        )
    except GroupAppealSparkError as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    report = trainer.report_
    if args.mlflow:
        from group_appeal_spark.jobs.tracking import track_training

        track_training(report, args.output, experiment=args.mlflow_experiment)
    before, after = report["before"], report["after"]

    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    print(
        f"wrote {args.output}: validation triplet accuracy {fmt(before['triplet_accuracy'])} -> "
        f"{fmt(after['triplet_accuracy'])}, held-out NMI {fmt(before['nmi'])} -> {fmt(after['nmi'])} "
        f"({report['epochs_run']} epochs, best {report['best_epoch']}, {report['seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

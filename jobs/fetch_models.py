"""fetch-models: snapshot the three models and their tokenizers/configs for clusters without internet.

    group-appeal-spark fetch-models --output /dbfs/models/group-appeal
    group-appeal-spark fetch-models --output hdfs:///models/group-appeal   # copied with Spark's Hadoop client

Run it where the Hugging Face hub is reachable. Each repository lands in <output>/<org>--<name>
(only config, tokenizer and *.safetensors files; pinned revisions from the config are honoured),
with a manifest.json. Jobs then take `--models-dir <output>` and never contact the hub. `--out`
is the former name of `--output` and still works.
"""

import argparse
import contextlib
import fnmatch
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs.session import build_session
from group_appeal_spark.jobs.startup import run_main
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.lib.config import load_config, parse_override
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.models.hub import (
    SNAPSHOT_PATTERNS,
    ModelSource,
    repo_folder_name,
    resolve_model_dir,
)

log = logging.getLogger("group_appeal_spark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="group-appeal-spark fetch-models", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # --out: the flag's name before every job took --output; kept so existing scripts still run
    parser.add_argument("--output", "--out", dest="output", required=True, metavar="DIR",
                        help="destination folder: local, a mounted volume (/dbfs/...), or a Hadoop URI "
                             "(hdfs://...); --out is an alias")
    parser.add_argument("--config", help="YAML config whose models.* keys (repo ids, revisions) to fetch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set models.stance.revision=<commit>")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --output")
    parser.add_argument("--onnx", action="store_true",
                        help="also export the three models to ONNX (inference.backend onnx; the onnx extra), in "
                             "fp32, or int8 with --set inference.precision=int8, into <output>/gas-onnx/")
    parser.add_argument("--measure", action="store_true",
                        help="with --onnx: time torch against ONNX Runtime on this CPU and record it for "
                             "inference.backend auto (run it on a machine like the executors)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def fetch(config, dest: Path, overwrite: bool) -> dict:
    """Copy each model of ``config`` into ``dest/<org>--<name>``; returns the manifest.

    Each repository is first resolved through the hub cache (downloaded when online, taken from
    the cache when offline), then its files are copied out as plain files.
    """
    manifest = {}
    for role, source in config.model_sources().items():
        ref = getattr(config.models, role)
        target = dest / repo_folder_name(ref.repo_id)
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise InputError(f"{target} is not empty; pass --overwrite to replace it")
        log.info("fetching %s (%s%s) -> %s", role, ref.repo_id, f"@{ref.revision}" if ref.revision else "", target)
        source = ModelSource(source.role, ref.repo_id, ref.revision)  # always from the hub/cache here
        snapshot = resolve_model_dir(source, cache_dir=config.models.cache_dir,
                                     local_files_only=True if config.models.offline else None)
        files = []
        for path in sorted(snapshot.rglob("*")):
            if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in SNAPSHOT_PATTERNS):
                rel = path.relative_to(snapshot)
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / rel)  # follows the cache's symlinks to the blobs
                files.append(str(rel))
        manifest[role] = {"repo_id": ref.repo_id, "revision": ref.revision, "commit": snapshot.name,
                          "folder": target.name, "files": files}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def export_onnx(config, dest: Path, manifest: dict, args) -> dict:
    """``--onnx``: the models' ONNX exports beside them (``lib/models/onnx.py``), and with ``--measure``
    this CPU's torch and ONNX Runtime rates; returns the export folders by role."""
    if not args.onnx:
        return {}
    from group_appeal_spark.lib.models.onnx import ensure_exports

    folders = {role: dest / entry["folder"] for role, entry in manifest.items()}
    exports = ensure_exports(folders, config.inference.precision)
    if args.measure:
        from group_appeal_spark.lib.models.onnx_measure import measure_backends
        from group_appeal_spark.testing.corpus import corpus

        for stage, rates in measure_backends(folders, exports, corpus()[:48]).items():
            log.info("fetch-models --measure: %s rows/s on this CPU: %s", stage,
                     ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    return exports


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        config = load_config(args.config, dict(parse_override(s) for s in args.set))
        remote = "://" in args.output or args.output.startswith("dbfs:")
        if not remote:
            dest = Path(args.output).expanduser()
            dest.mkdir(parents=True, exist_ok=True)
            export_onnx(config, dest, fetch(config, dest, args.overwrite), args)
            log.info("fetch-models: done; use --models-dir %s", dest)
            return
        with tempfile.TemporaryDirectory(prefix="gas-fetch-") as tmp:
            export_onnx(config, Path(tmp), fetch(config, Path(tmp), True), args)
            fs = filesystem(build_session(config, "group-appeal-spark fetch-models"))  # no executor work
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file() and ".cache" not in path.parts:
                    fs.put_file(path, join_path(args.output, str(path.relative_to(tmp))))
        log.info("fetch-models: done; copy or mount %s where the jobs run and pass --models-dir", args.output)

    return run_main("fetch-models", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())

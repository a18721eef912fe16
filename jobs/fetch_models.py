"""fetch-models: snapshot the three models and their tokenizers/configs for clusters without internet.

    group-appeal-spark fetch-models --out /dbfs/models/group-appeal
    group-appeal-spark fetch-models --out hdfs:///models/group-appeal   # copied with Spark's Hadoop client

Run it where the Hugging Face hub is reachable. Each repository lands in <out>/<org>--<name>
(only config, tokenizer and *.safetensors files; pinned revisions from the config are honoured),
with a manifest.json. Jobs then take `--models-dir <out>` and never contact the hub.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401 - run as a file from a checkout

from group_appeal_spark.jobs import _common
from group_appeal_spark.lib.errors import InputError, ModelLoadError
from group_appeal_spark.lib.models import SNAPSHOT_PATTERNS, repo_folder_name

log = _common.log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="group-appeal-spark fetch-models", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True,
                        help="destination folder: local, a mounted volume (/dbfs/...), or a Hadoop URI (hdfs://...)")
    parser.add_argument("--config", help="YAML config whose models.* keys (repo ids, revisions) to fetch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set models.stance.revision=<commit>")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    parser.add_argument("--log-level", default="INFO")
    return parser


def fetch(config, dest: Path, overwrite: bool) -> dict:
    """Download each model of ``config`` into ``dest/<org>--<name>``; returns the manifest."""
    from huggingface_hub import snapshot_download

    manifest = {}
    for role, ref in [(r, getattr(config.models, r)) for r in
                      ("detector", "detector_tokenizer", "stance", "embedder", "embedder_config")]:
        target = dest / repo_folder_name(ref.repo_id)
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise InputError(f"fetch-models: {target} is not empty; pass --overwrite to replace it")
        log.info("fetching %s (%s%s) -> %s", role, ref.repo_id, f"@{ref.revision}" if ref.revision else "", target)
        try:
            snapshot_download(ref.repo_id, revision=ref.revision, local_dir=str(target),
                              allow_patterns=SNAPSHOT_PATTERNS, cache_dir=config.models.cache_dir)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"fetch-models: cannot download {ref.repo_id}: {first}. fetch-models needs "
                                 f"access to the Hugging Face hub (or a hub cache holding the models)") from exc
        files = sorted(str(p.relative_to(target)) for p in target.rglob("*")
                       if p.is_file() and ".cache" not in p.parts)
        manifest[role] = {"repo_id": ref.repo_id, "revision": ref.revision, "folder": target.name, "files": files}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        config = _common.load_config(args.config, dict(_common.parse_override(s) for s in args.set))
        remote = "://" in args.out or args.out.startswith("dbfs:")
        if not remote:
            dest = Path(args.out).expanduser()
            dest.mkdir(parents=True, exist_ok=True)
            fetch(config, dest, args.overwrite)
            log.info("fetch-models: done; use --models-dir %s", dest)
            return
        with tempfile.TemporaryDirectory(prefix="gas-fetch-") as tmp:
            fetch(config, Path(tmp), True)
            spark = _common.build_session(config, "group-appeal-spark fetch-models")
            from group_appeal_spark.jobs import io

            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file() and ".cache" not in path.parts:
                    io.put_file(spark, path, io.join_path(args.out, str(path.relative_to(tmp))))
        log.info("fetch-models: done; copy or mount %s where the jobs run and pass --models-dir", args.out)

    return _common.run_main("fetch-models", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())

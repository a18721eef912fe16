"""The second driver of tests/jobs/test_gpu_cluster.py: the model stages under their own profile.

On the standalone cluster whose worker announces two GPUs, the session's default profile asks no
GPU (``spark.task.resource.gpu.amount`` unset). ``detect_appeals`` + ``embed_mentions`` run twice
over the same documents with the tiny models: once as the pandas UDFs of the default profile, once
with ``inference.task_gpus: 1`` and ``task_cpus: 2``. Each model task writes what it got (stage id,
CPUs, GPU addresses) to a file; the driver's REST API gives each stage's resource profile. The
models stay on the CPU: ``inference.device`` is set to cpu after the config check, which refuses
GPUs the models would not use. Prints one JSON object.
"""

import dataclasses
import json
import sys
import time
import urllib.request

from pyspark.sql import SparkSession


def main(master: str, discovery: str, records: str, ui_port: str, hub_cache: str) -> None:
    from group_appeal_spark.jobs.transforms import detect_appeals, embed_mentions
    from group_appeal_spark.lib.config import load_config
    from group_appeal_spark.testing.tiny_models import corpus
    from group_appeal_spark.udfs.hooks import UdfHooks

    spark = (SparkSession.builder.master(master).appName("gas-profile-test")
             .config("spark.executor.cores", "2").config("spark.executor.memory", "1g")
             .config("spark.executor.resource.gpu.amount", "2")
             .config("spark.executor.resource.gpu.discoveryScript", discovery)
             .config("spark.executorEnv.HF_HUB_OFFLINE", "1").config("spark.executorEnv.HF_HUB_CACHE", hub_cache)
             .config("spark.ui.port", ui_port).config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())

    def on_task(stage: str, device: str) -> None:
        from pyspark import TaskContext

        from group_appeal_spark.udfs.devices import task_gpus

        ctx = TaskContext.get()
        with open(records, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"stage": stage, "stage_id": ctx.stageId(), "cpus": ctx.cpus(),
                                 "gpus": task_gpus(), "device": device}) + "\n")

    texts = corpus()[:30] + [None, ""]
    docs = spark.createDataFrame([(f"d{i}", t, f"P{i % 3}") for i, t in enumerate(texts)], "id string, text string, party string")
    overrides = {"input.carry_cols": ["party"], "inference.partitions": 4}
    outputs = {}
    for name, extra in (("plain", {}), ("profiled", {"inference.task_gpus": 1, "inference.task_cpus": 2,
                                                    "inference.device": "cuda"})):
        config = load_config(overrides={**overrides, **extra})
        config = dataclasses.replace(config, inference=dataclasses.replace(config.inference, device="cpu"))
        hooks = UdfHooks(on_task=on_task) if name == "profiled" else None
        spark.sparkContext.setJobGroup(name, name)
        result = detect_appeals(docs, config, hooks=hooks)
        mentions = result.mentions.orderBy("doc_id", "start", "end").toPandas()
        documents = result.documents.orderBy("doc_id").toPandas()
        embeddings = embed_mentions(result.mentions, config, hooks=hooks).orderBy("mention_key").toPandas()
        result.release()
        outputs[name] = {"mentions": mentions.to_dict("records"), "documents": documents.to_dict("records"),
                         "embeddings": [[k, [float(x) for x in v]] for k, v in
                                        zip(embeddings["mention_key"], embeddings["embedding"])]}
    tracker = spark.sparkContext.statusTracker()
    ours = {s for job in tracker.getJobIdsForGroup("profiled") for s in tracker.getJobInfo(job).stageIds}
    time.sleep(2)  # the REST API reads what the listener bus has delivered
    stages = [s for s in _stages(spark, ui_port) if s["stage_id"] in ours]
    print(json.dumps({"outputs": outputs, "stages": stages}, default=str))
    spark.stop()


def _stages(spark, ui_port: str) -> list[dict]:
    """The application's completed stages, with their resource profile, from the driver's REST API."""
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/api/v1/applications/{app}/stages?status=complete") as r:
        return [{"stage_id": s["stageId"], "profile": s["resourceProfileId"], "name": s["name"]} for s in json.load(r)]


if __name__ == "__main__":
    main(*sys.argv[1:6])

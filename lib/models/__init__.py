"""Model loading: where each model comes from and how its files become torch modules.

``hub`` resolves hub ids, revisions, caches and local folders; ``loaders`` loads tokenizers and
models from folders; ``weights`` memory-maps safetensors; ``bundle`` carries the resolved
folders to the executors; ``devices`` holds devices and precisions. The most used names are
re-exported here.
"""

from group_appeal_spark.lib.models.hub import (  # noqa: F401
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    MODEL_ROLES,
    STANCE_ID,
    ModelSource,
    models_dir_source,
    repo_folder_name,
    resolve_model_dir,
)
from group_appeal_spark.lib.models.loaders import (  # noqa: F401
    load_sequence_classifier,
    load_token_classifier,
    load_tokenizer,
)

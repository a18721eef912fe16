"""The code MLflow runs to load a logged cluster model ("models from code": no pickle is written)."""

from mlflow.models import set_model

from group_appeal_spark.ml.pyfunc import ClusterModelPyfunc

set_model(ClusterModelPyfunc())

"""Spark types of what the UDFs return (the Arrow side of lib's results)."""

from pyspark.sql import types as T

APPEAL_TYPE = T.StructType([
    T.StructField("seg_idx", T.IntegerType(), False),
    T.StructField("span", T.StringType(), False),
    T.StructField("start", T.IntegerType(), False),
    T.StructField("end", T.IntegerType(), False),
    T.StructField("stance", T.StringType(), False),
    T.StructField("prob_positive", T.DoubleType(), False),
    T.StructField("prob_negative", T.DoubleType(), False),
    T.StructField("prob_neutral", T.DoubleType(), False),
    T.StructField("mention_key", T.StringType(), False),
])

DOCUMENT_RESULT_TYPE = T.StructType([
    T.StructField("appeals", T.ArrayType(APPEAL_TYPE, containsNull=False), True),
    T.StructField("n_segments", T.IntegerType(), True),
    T.StructField("error", T.StringType(), True),
    T.StructField("error_stage", T.StringType(), True),
])

EMBEDDING_TYPE = T.ArrayType(T.FloatType(), containsNull=False)

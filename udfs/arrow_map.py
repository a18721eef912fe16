"""A model stage as a ``mapInArrow`` function: the rows as they came, plus one result column.

Where the model stages run under their own resource profile (jobs/profiles.py), Spark takes the
profile from ``mapInArrow``; a pandas UDF in a ``select`` has none. The other columns pass
through as the Arrow arrays Spark sent (no pandas round trip: carried dates, decimals and
structs are untouched); only the model's column is converted, from the same pandas result the
pandas UDF returns, to the Arrow type of the same Spark type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type


def to_arrow(values: pd.DataFrame | pd.Series, arrow_type: pa.DataType) -> pa.Array:
    """A model's pandas result as an Arrow array of ``arrow_type`` (a struct: one column per field)."""
    if pa.types.is_struct(arrow_type):
        fields = list(arrow_type)
        return pa.StructArray.from_arrays([to_arrow(values[f.name], f.type) for f in fields], fields=fields)
    return pa.array(values, type=arrow_type, from_pandas=True)


def arrow_map(make_run: Callable[[], Callable[[list], object]], in_col: str, out_col: str,
              dtype: T.DataType) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of a model stage.

    ``make_run`` is called in the task at its first batch (a task without rows loads no model)
    and returns the batch function: the values of ``in_col`` -> a pandas result of ``dtype``,
    one per value, in order.
    """
    arrow_type = to_arrow_type(dtype)  # once, on the driver: the function's closure carries it

    def mapper(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        run = None
        for batch in batches:
            if run is None:
                run = make_run()
            result = to_arrow(run(batch.column(in_col).to_pylist()), arrow_type)
            yield pa.RecordBatch.from_arrays([*batch.columns, result], names=[*batch.schema.names, out_col])

    return mapper


def with_result_schema(schema: T.StructType, out_col: str, dtype: T.DataType) -> T.StructType:
    """The map's output schema: ``schema`` plus the nullable ``out_col`` of ``dtype``."""
    return T.StructType([*schema.fields, T.StructField(out_col, dtype, True)])

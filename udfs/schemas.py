"""Spark types of what the UDFs return (the Arrow side of lib's results).

The record dataclasses of ``lib`` are the one definition of the fields; their Spark types are
derived here, because ``lib`` never imports pyspark.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from group_appeal_spark.lib.inference.appeals import AppealRecord, DocumentResult
from pyspark.sql import types as T

_SCALARS = {int: T.IntegerType(), float: T.DoubleType(), str: T.StringType()}


def spark_type(hint) -> tuple[T.DataType, bool]:
    """The Spark type of a dataclass field's type hint, and whether it is nullable.

    ``int``, ``float`` and ``str`` map to ``IntegerType``, ``DoubleType`` and ``StringType``;
    ``X | None`` (or ``Optional[X]``) is ``X``, nullable; ``list[X]`` is an array of ``X``
    (without nulls unless ``X`` is optional); a dataclass is a struct of its fields.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"no Spark type for {hint}: only X | None unions are supported")
        return spark_type(inner[0])[0], True
    if origin is list:
        element, contains_null = spark_type(args[0])
        return T.ArrayType(element, containsNull=contains_null), False
    if dataclasses.is_dataclass(hint):
        return struct_type(hint), False
    if hint in _SCALARS:
        return _SCALARS[hint], False
    raise TypeError(f"no Spark type for {hint!r}")


def struct_type(cls, *, all_nullable: bool = False) -> T.StructType:
    """The Spark struct of a dataclass: one field per dataclass field, in order.

    Parameters
    ----------
    cls : dataclass type
    all_nullable : bool, default False
        Declare every top-level field nullable, whatever its hint.
    """
    hints = typing.get_type_hints(cls)
    fields = []
    for field in dataclasses.fields(cls):
        dtype, nullable = spark_type(hints[field.name])
        fields.append(T.StructField(field.name, dtype, nullable or all_nullable))
    return T.StructType(fields)


APPEAL_TYPE = struct_type(AppealRecord)
# The UDF's result struct has always been declared all-nullable (n_segments and appeals too):
# the documents table written from it keeps that schema.
DOCUMENT_RESULT_TYPE = struct_type(DocumentResult, all_nullable=True)

EMBEDDING_TYPE = T.ArrayType(T.FloatType(), containsNull=False)

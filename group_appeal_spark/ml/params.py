"""Spark ML Params that are config keys: typed, checked and combined by ``lib/config.py`` itself.

Each stage declares a table of :class:`ConfigParam` rows (Param name -> dotted config key). The
Param's type converter is the config's own coercion for that key's type, and every
``set``/``setParams`` is checked by :func:`~group_appeal_spark.lib.config.load_config` with the
stage's other settings, so a bad value raises the same :class:`ConfigError` (naming the key and
the value) as ``--set`` does. The effective configuration is built like a job's: packaged
defaults, then ``configFile``, then ``settings`` (any dotted keys), then the Params set.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

from pyspark.ml.param import Param, Params, TypeConverters

from group_appeal_spark.lib.config import JobConfig, _coerce, load_config
from group_appeal_spark.lib.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ConfigParam:
    """One Param that sets the config key ``key`` (e.g. ``kMax`` -> ``clustering.k_max``)."""

    name: str
    key: str
    doc: str


def _hint(key: str):
    """The type the config dataclasses give the dotted ``key``."""
    obj: typing.Any = JobConfig()
    *sections, leaf = key.split(".")
    for section in sections:
        obj = getattr(obj, section)
    return typing.get_type_hints(type(obj))[leaf]


@functools.lru_cache(maxsize=1)
def _defaults() -> JobConfig:
    return load_config()


def _default(key: str):
    """The packaged default (conf/defaults.yaml) of the dotted ``key``."""
    obj: typing.Any = _defaults()
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _converter(key: str):
    hint = _hint(key)
    return lambda value: _coerce(key, value, hint)  # the config's own type check and message


def _settings(value):
    """``settings``: a mapping of dotted config keys to values (checked when the config is built)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"settings: {value!r} must be a mapping of dotted config keys to values, "
                          f"e.g. {{'models.embedder.revision': 'main'}}")
    return dict(value)


def _accessors(name: str):
    cap = name[0].upper() + name[1:]

    def getter(self):
        return self.getOrDefault(getattr(self, name))

    def setter(self, value):
        return self._set(**{name: value})

    getter.__name__, setter.__name__ = f"get{cap}", f"set{cap}"
    getter.__doc__, setter.__doc__ = f"Gets the value of {name}.", f"Sets the value of {name}."
    return getter, setter


def with_config_params(*rows: ConfigParam):
    """Class decorator: a Param, a getter and a setter per row, with the config's types."""

    def decorate(cls):
        keys = dict(getattr(cls, "_config_keys", {}))
        for row in rows:
            setattr(cls, row.name, Param(Params._dummy(), row.name, f"{row.doc} (config key {row.key})",
                                         typeConverter=_converter(row.key)))
            getter, setter = _accessors(row.name)
            setattr(cls, getter.__name__, getter)
            setattr(cls, setter.__name__, setter)
            keys[row.name] = row.key
        cls._config_keys = keys
        return cls

    return decorate


def column_param(name: str, doc: str) -> Param:
    """A Param naming a column (a non-empty string)."""
    return Param(Params._dummy(), name, doc, typeConverter=TypeConverters.toString)


class HasConfig(Params):
    """The config part every stage shares: ``configFile``, ``settings`` and the config-key Params."""

    configFile = Param(Params._dummy(), "configFile", "a YAML file with any subset of conf/defaults.yaml's keys "
                       "(like --config); null = the packaged defaults", typeConverter=TypeConverters.toString)
    settings = Param(Params._dummy(), "settings", "dotted config keys to values (like --set), for keys without "
                     "a Param of their own, e.g. {'models.embedder.revision': 'main'}", typeConverter=_settings)
    _config_keys: typing.ClassVar[dict[str, str]] = {}  # Param name -> config key, per stage class

    def __init__(self):
        super().__init__()
        self._deferred = False
        self._setDefault(configFile=None, settings={})
        self._setDefault(**{name: _default(key) for name, key in self._config_keys.items()})

    def getConfigFile(self):
        return self.getOrDefault(self.configFile)

    def setConfigFile(self, value):
        return self._set(configFile=value)

    def getSettings(self):
        return self.getOrDefault(self.settings)

    def setSettings(self, value):
        return self._set(settings=value)

    def config_overrides(self) -> dict:
        """The dotted keys this stage sets: ``settings``, then every config-key Param set explicitly."""
        out = dict(self.getSettings() or {})
        for name, key in self._config_keys.items():
            param = getattr(self, name)
            if self.isSet(param):
                out[key] = self.getOrDefault(param)
        return out

    def job_config(self) -> JobConfig:
        """The validated configuration of this stage (raises ConfigError naming the key and value)."""
        return load_config(self.getConfigFile(), self.config_overrides())

    def _set(self, **kwargs):
        # a value is kept only when the whole configuration still validates with it
        previous = dict(self._paramMap)
        super()._set(**kwargs)
        if not getattr(self, "_deferred", False):
            try:
                self.job_config()
            except Exception:
                self._paramMap = previous
                raise
        return self

    def _copyValues(self, to, extra=None):
        # Params.copy sets the values one by one: check the configuration once, at the end
        to._deferred = True
        try:
            super()._copyValues(to, extra)
        finally:
            to._deferred = False
        if isinstance(to, HasConfig):
            to.job_config()
        return to

"""Panora's objects: the unified model read as Panora's server sends it (`sources/common/model.py`)."""

from sources.common.model import unified_objects
from sources.panora.settings import PROVIDER, VOLATILE_FIELDS

OBJECTS = unified_objects(PROVIDER, VOLATILE_FIELDS)

"""Panora's objects: the unified model read as Panora's server sends it (`sources/common/unified_model.py`)."""

from sources.common.unified_model import unified_objects
from sources.panora.settings import PROVIDER, VOLATILE_FIELDS

OBJECTS = unified_objects(PROVIDER, VOLATILE_FIELDS)

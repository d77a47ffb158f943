"""Fast pickling for the records and state that cross Flink operators.

Flink keeps PyFlink state declared as ``PICKLED_BYTE_ARRAY`` as pickles and pickles every
record between Python operators, so pickling runs several times per ping. A slots dataclass
pickles through ``dataclasses``' generic ``__getstate__``/``__setstate__``, which walk
``fields()`` on every call; pickling the constructor arguments instead is about twice as fast
and smaller. Pickles written the old way still load (the class keeps ``__setstate__``).
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

C = TypeVar("C", bound=type)


def pickled_by_fields(cls: C) -> C:
    """Class decorator: pickle a dataclass as ``cls(*field values)``."""
    names = [f.name for f in fields(cls)]
    if len(names) < 2:
        raise TypeError(f"{cls.__name__}: pickled_by_fields needs two fields or more")
    values = attrgetter(*names)

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, values(self)

    setattr(cls, "__reduce__", __reduce__)  # noqa: B010 - mypy rejects assigning a method
    return cls

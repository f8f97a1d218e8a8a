"""Declarative base: naming convention, UUIDv7 keys and UTC timestamps shared by every table."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import DateTime, Enum, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        uuid.UUID: Uuid(),
    }


M = TypeVar("M", bound=Base)


def draft(model: type[M], **values: Any) -> M:
    """A row written by our own SQL, with the mapped class's attribute names but none of its
    instrumentation: a plain namespace (building ORM objects for every order cost more than the
    rest of building it). It is never added to a session; read it as the model it stands for,
    and leave it to the repository that writes it to fill in what it leaves unset."""
    return cast(M, SimpleNamespace(**values))


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimestampMixin(CreatedAtMixin):
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def text_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A VARCHAR with a CHECK constraint: cheaper to extend in migrations than a PG enum."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )

"""ORM tables, imported together so Alembic sees the whole schema."""

from xiaopu.models.accounts import Account, AccountStatus, RefreshToken
from xiaopu.models.api_keys import ApiKey
from xiaopu.models.base import Base
from xiaopu.models.operators import Operator, OperatorRole
from xiaopu.models.suppliers import MemberRole, Supplier, SupplierMember, SupplierStatus

__all__ = [
    "Account",
    "AccountStatus",
    "ApiKey",
    "Base",
    "MemberRole",
    "Operator",
    "OperatorRole",
    "RefreshToken",
    "Supplier",
    "SupplierMember",
    "SupplierStatus",
]

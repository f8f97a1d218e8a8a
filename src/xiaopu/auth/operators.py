"""Operators, as the `xiaopu operator` command manages them: create, disable and list.

Creating an operator for a login that already has an account promotes that account, but only
with the account's own password: otherwise whoever signed up first with a colleague's email
would become an operator when the colleague is made one. A disabled operator keeps its row
(the audit log names it) and is refused at once; `create` again enables it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import service as audit
from xiaopu.auth import repository
from xiaopu.auth.passwords import hash_password, verify_password
from xiaopu.auth.schemas import SignupRequest
from xiaopu.errors import AccountExists, Conflict, Forbidden, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.contact import normalize_email, normalize_phone
from xiaopu.models import Account, AccountStatus, AuditAction, Operator, OperatorRole


class OperatorExists(Conflict):
    code = "operator_exists"
    title = "This account is already an operator"


class OperatorNotFound(NotFound):
    code = "operator_not_found"
    title = "No operator has this login"


class OperatorAlreadyDisabled(Conflict):
    code = "operator_already_disabled"
    title = "This operator is already disabled"


class ExistingAccountPasswordMismatch(Forbidden):
    code = "existing_account_password_mismatch"
    title = "An account with this login exists, and this is not its password"


class AccountNotActive(Forbidden):
    code = "account_not_active"
    title = "The account with this login is disabled"


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    account_id: uuid.UUID
    login: str
    display_name: str | None
    role: OperatorRole
    created_at: datetime
    disabled_at: datetime | None
    account_created: bool = False


def _entry(operator: Operator, account: Account, *, account_created: bool = False) -> OperatorEntry:
    return OperatorEntry(
        account_id=account.id,
        login=account.email or account.phone or str(account.id),
        display_name=account.display_name,
        role=operator.role,
        created_at=operator.created_at,
        disabled_at=operator.disabled_at,
        account_created=account_created,
    )


def _state(operator: Operator) -> dict[str, object]:
    return {"role": operator.role, "disabled_at": operator.disabled_at}


async def create(session: AsyncSession, data: SignupRequest, *, actor: str) -> OperatorEntry:
    """Make the person with this login an operator (an admin), creating their account if there
    is none; enables a disabled operator again. `actor` is who ran the command, for the log."""
    account = await repository.account_by_login(session, email=data.email, phone=data.phone)
    account_created = account is None
    if account is None:
        password_hash = await to_thread.run_sync(hash_password, data.password)
        account = Account(
            email=data.email,
            phone=data.phone,
            password_hash=password_hash,
            display_name=data.display_name,
        )
        session.add(account)
        try:
            await session.flush()
        except IntegrityError as exc:  # a sign-up took the login meanwhile
            raise AccountExists() from exc
    else:
        if not await to_thread.run_sync(verify_password, account.password_hash, data.password):
            raise ExistingAccountPasswordMismatch(
                "Give the existing account's password to make it an operator, or use another login."
            )
        if account.status is not AccountStatus.active:
            raise AccountNotActive()
    operator = await repository.operator(session, account.id, lock=True)
    if operator is None:
        operator = Operator(account_id=account.id, role=OperatorRole.admin, created_at=utcnow())
        session.add(operator)
        await session.flush()
        action, before = AuditAction.operator_create, None
    elif operator.disabled_at is not None:
        before = _state(operator)
        operator.disabled_at = None
        await session.flush()
        action = AuditAction.operator_enable
    else:
        raise OperatorExists()
    await audit.record(
        session,
        None,
        action,
        "operator",
        account.id,
        before=before,
        after={**_state(operator), "account_created": account_created},
        actor=actor,
    )
    return _entry(operator, account, account_created=account_created)


async def disable(
    session: AsyncSession, login: str, *, actor: str, reason: str | None = None
) -> OperatorEntry:
    """Refuse this operator from now on (their next request is refused; see auth.auth); their
    person account stays as it is."""
    email, phone = parse_login(login)
    account = await repository.account_by_login(session, email=email, phone=phone)
    operator = (
        None if account is None else await repository.operator(session, account.id, lock=True)
    )
    if account is None or operator is None:
        raise OperatorNotFound()
    if operator.disabled_at is not None:
        raise OperatorAlreadyDisabled()
    before = _state(operator)
    operator.disabled_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        None,
        AuditAction.operator_disable,
        "operator",
        account.id,
        reason=reason,
        before=before,
        after=_state(operator),
        actor=actor,
    )
    return _entry(operator, account)


async def list_all(session: AsyncSession) -> list[OperatorEntry]:
    return [_entry(o, a) for o, a in await repository.operators_with_accounts(session)]


def parse_login(login: str) -> tuple[str | None, str | None]:
    """(email, phone) of a login, normalised as sign-up stores them; ValueError if neither."""
    login = login.strip()
    if "@" in login:
        return normalize_email(login), None
    return None, normalize_phone(login)

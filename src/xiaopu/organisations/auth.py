"""Who may act for an organisation: its members (admins only, where asked); anyone else gets
404, as if the organisation did not exist."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import CurrentPerson
from xiaopu.db import DbSession
from xiaopu.models import OrganisationRole
from xiaopu.organisations import service


@dataclass(frozen=True, slots=True)
class Member:
    organisation_id: uuid.UUID
    account_id: uuid.UUID
    role: OrganisationRole


class OrganisationAccess:
    def __init__(self, *, admin_only: bool = False, active_only: bool = False) -> None:
        self.admin_only = admin_only
        self.active_only = active_only

    async def __call__(
        self, organisation_id: uuid.UUID, person: CurrentPerson, session: DbSession
    ) -> Member:
        role = await service.member_role(session, organisation_id, person.account_id)
        if role is None:
            raise service.OrganisationNotFound()
        if self.admin_only and role is not OrganisationRole.admin:
            raise service.OrganisationAdminOnly()
        if self.active_only:
            await service.require_active(session, organisation_id)
        return Member(organisation_id, person.account_id, role)


OrganisationMember = Annotated[Member, Depends(OrganisationAccess())]
OrganisationAdmin = Annotated[Member, Depends(OrganisationAccess(admin_only=True))]
# Moving money out (withdrawals): an admin of an organisation that is not suspended.
ActiveOrganisationAdmin = Annotated[
    Member, Depends(OrganisationAccess(admin_only=True, active_only=True))
]

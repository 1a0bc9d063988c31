"""People and their roles: create, list, disable, set a password, grant and remove roles.

Every change is audited in the same transaction. Managing people is the ``members``
permission; on top, only an owner may make, change or remove an owner, so an admin cannot
lock the owners out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clm.accounts import audit
from clm.accounts.passwords import hash_password
from clm.accounts.roles import Permission, Principal, Role, authorize
from clm.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationError
from clm.store.models import Membership, PasswordReset, User, UserSession

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class MembershipPublic(BaseModel):
    workspace_id: int
    role: Role


class UserPublic(BaseModel):
    """A person as listed: never the password hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    created_at: datetime
    disabled_at: datetime | None
    has_password: bool
    memberships: list[MembershipPublic]


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValidationError("Invalid email", [FieldError(("email",), "not an email address")])
    return email


def _public(session: Session, user: User) -> UserPublic:
    rows = session.execute(
        select(Membership.workspace_id, Membership.role)
        .where(Membership.user_id == user.id)
        .order_by(Membership.workspace_id)
    )
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
        has_password=user.password_hash is not None,
        memberships=[MembershipPublic(workspace_id=w, role=Role(r)) for w, r in rows],
    )


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def get_user(session: Session, ref: int | str) -> User:
    """A user by id or email."""
    user = session.get(User, int(ref)) if str(ref).isdigit() else find_user(session, str(ref))
    if user is None:
        raise NotFound(f"No user {ref!r}")
    return user


def create_user(
    session: Session,
    who: Principal | audit.Actor,
    email: str,
    password: str | None = None,
    name: str = "",
) -> User:
    """A new person; without a password they set one through a reset link."""
    email = normalise_email(email)
    if find_user(session, email) is not None:
        raise Conflict(f"User {email!r} already exists")
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password) if password is not None else None,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    session.flush()
    audit.record(session, who, "user.create", f"user:{user.id}", after={"email": email})
    return user


def list_users(session: Session, workspace_id: int | None = None) -> list[UserPublic]:
    """Everyone (``workspace_id`` None: the operator's view) or one workspace's members."""
    query = select(User).order_by(User.id)
    if workspace_id is not None:
        query = query.join(Membership, Membership.user_id == User.id).where(
            Membership.workspace_id == workspace_id
        )
    users = list(session.scalars(query))
    return [_public(session, u) for u in users]


def end_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(UserSession).where(UserSession.user_id == user_id))


def set_password(session: Session, who: Principal | audit.Actor, user: User, password: str) -> None:
    """A new password; signs the person out everywhere and kills their open reset links."""
    user.password_hash = hash_password(password)
    end_sessions(session, user.id)
    session.execute(
        delete(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None)
        )
    )
    audit.record(session, who, "user.password", f"user:{user.id}", workspace_id=None)


def set_disabled(
    session: Session, who: Principal | audit.Actor, user: User, disabled: bool
) -> None:
    """Disable (sign out everywhere, refuse sign-in) or re-enable a person."""
    before = user.disabled_at is not None
    user.disabled_at = datetime.now(UTC) if disabled else None
    if disabled:
        end_sessions(session, user.id)
    audit.record(
        session,
        who,
        "user.disable" if disabled else "user.enable",
        f"user:{user.id}",
        before={"disabled": before},
        after={"disabled": disabled},
        workspace_id=None,
    )


def _membership(session: Session, user_id: int, workspace_id: int) -> Membership | None:
    return session.scalar(
        select(Membership).where(
            Membership.user_id == user_id, Membership.workspace_id == workspace_id
        )
    )


def _may_touch_owner(who: Principal, *roles: Role | None) -> None:
    if Role.OWNER in roles and who.role not in (Role.OWNER, None):
        raise PermissionDenied("Only an owner may make, change or remove an owner")
    if Role.OWNER in roles and who.key_id is not None:
        raise PermissionDenied("Only an owner may make, change or remove an owner")


def set_role(session: Session, who: Principal, user: User, workspace_id: int, role: Role) -> None:
    """Give ``user`` ``role`` in the workspace (adding them, or changing their role)."""
    authorize(who, Permission.MEMBERS)
    existing = _membership(session, user.id, workspace_id)
    before = Role(existing.role) if existing else None
    _may_touch_owner(who, before, role)
    if existing is None:
        session.add(
            Membership(
                user_id=user.id, workspace_id=workspace_id, role=role, created_at=datetime.now(UTC)
            )
        )
    else:
        if before is Role.OWNER and role is not Role.OWNER:
            _keep_an_owner(session, workspace_id, user.id)
        existing.role = role
    session.flush()
    audit.record(
        session,
        who,
        "member.role",
        f"user:{user.id}",
        before={"email": user.email, "role": before} if before else None,
        after={"email": user.email, "role": role},
        workspace_id=workspace_id,
    )


def remove_member(session: Session, who: Principal, user: User, workspace_id: int) -> None:
    authorize(who, Permission.MEMBERS)
    existing = _membership(session, user.id, workspace_id)
    if existing is None:
        raise NotFound(f"User {user.id} is not a member of this workspace")
    role = Role(existing.role)
    _may_touch_owner(who, role)
    if role is Role.OWNER:
        _keep_an_owner(session, workspace_id, user.id)
    session.delete(existing)
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id, UserSession.workspace_id == workspace_id
        )
    )
    audit.record(
        session,
        who,
        "member.remove",
        f"user:{user.id}",
        before={"email": user.email, "role": role},
        workspace_id=workspace_id,
    )


def _keep_an_owner(session: Session, workspace_id: int, leaving_user_id: int) -> None:
    others = session.scalar(
        select(Membership.id).where(
            Membership.workspace_id == workspace_id,
            Membership.role == Role.OWNER,
            Membership.user_id != leaving_user_id,
        )
    )
    if others is None:
        raise Conflict("A workspace keeps at least one owner")


def role_in(session: Session, user_id: int, workspace_id: int) -> Role | None:
    found = _membership(session, user_id, workspace_id)
    return Role(found.role) if found else None

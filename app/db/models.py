"""The SQLModel tables. The schema is created only by the Alembic migrations in `migrations/`."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlmodel import Field, SQLModel, col

from app.db.types import BigIntegerPK, UTCDateTime, utcnow
from app.validation import MAX_EMAIL, MAX_INDEXED

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

# A `*_ci` column holds str.lower() of its source, which can be longer: "İ" (U+0130) lowers to
# "i" + U+0307. That is the only character that grows, and it only doubles.
LOWERED_GROWTH = 2


class ProvisionedBy(enum.StrEnum):
    SCIM = "SCIM"
    MANAGER = "MANAGER"


class ManagedBy(enum.StrEnum):
    IDENTITY_PROVIDER = "IDENTITY_PROVIDER"
    MANAGER = "MANAGER"


class Channel(enum.StrEnum):
    SCIM = "SCIM"
    GRAPHQL = "GRAPHQL"
    CLI = "CLI"


class IntegrationGeneration(enum.StrEnum):
    FIRSTGEN = "FIRSTGEN"
    NEXTGEN = "NEXTGEN"


class IntegrationStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    DISCONNECTED = "DISCONNECTED"


class Outcome(enum.StrEnum):
    APPLIED = "APPLIED"
    DENIED = "DENIED"
    IGNORED = "IGNORED"
    FAILED = "FAILED"
    READ = "READ"  # a SCIM request that read, and succeeded (app/activity.py)


def _ts(nullable: bool = False) -> Any:
    return Field(default_factory=utcnow if not nullable else None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _account_fk() -> Any:
    return Field(sa_column=Column(Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False))


def _account_column() -> Any:
    """The account of a row that belongs to another tenant row, whose foreign key (leading with
    `account_id`) already ties it to the account."""
    return Field(sa_column=Column(Integer, nullable=False))


DEFAULT_DEPROVISION_RETENTION_DAYS = 30
DEFAULT_ACTIVITY_RETENTION_DAYS = 90


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    identifier: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()
    # How long a user deleted over SCIM is kept as a tombstone, restorable by the identity provider;
    # 0 deletes at once (see services.users.deprovision_user).
    deprovision_retention_days: int = Field(
        default=DEFAULT_DEPROVISION_RETENTION_DAYS,
        sa_column=Column(Integer, nullable=False, server_default=str(DEFAULT_DEPROVISION_RETENTION_DAYS)),
    )
    # How long the activity log keeps its records of SCIM requests (`python -m app purge`).
    activity_retention_days: int = Field(
        default=DEFAULT_ACTIVITY_RETENTION_DAYS,
        sa_column=Column(Integer, nullable=False, server_default=str(DEFAULT_ACTIVITY_RETENTION_DAYS)),
    )


# Every table below `accounts` belongs to one account: `account_id` leads its primary key, each of its
# unique constraints and foreign keys, and every query names it. That keeps an account's rows
# together in every index, and is what distributing the tables by account (Citus-style) requires;
# docs/scaling.md has the path, tests/test_tenant_keys.py checks the rule.


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"
    __table_args__ = (PrimaryKeyConstraint("account_id", "identifier"),)

    account_id: int = _account_fk()
    identifier: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "org_identifier", "identifier"),
        ForeignKeyConstraint(
            ["account_id", "org_identifier"], ["organizations.account_id", "organizations.identifier"], ondelete="CASCADE"
        ),
    )

    account_id: int = _account_fk()
    org_identifier: str = Field(sa_column=Column(String(64), nullable=False))
    identifier: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()


class User(SQLModel, table=True):
    """A user of one account. Multi-valued SCIM attributes are kept as sent in `multi_valued`;
    `user_attribute_values` indexes them for filters."""

    __tablename__ = "users"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "id"),
        UniqueConstraint("account_id", "user_name_ci"),
        Index(None, "account_id", "external_id"),
        Index(None, "account_id", "email_ci"),
        Index(None, "account_id", "created_at"),
        # Deleting a user clears `manager` on the users they manage: found by index, not by a scan.
        Index(None, "account_id", "manager_id"),
        # Tombstones, for `python -m app purge`: few rows, so the index holds only them.
        Index(
            None,
            "account_id",
            "deprovisioned_at",
            postgresql_where=text("deprovisioned_at IS NOT NULL"),
            sqlite_where=text("deprovisioned_at IS NOT NULL"),
        ),
    )

    id: str = Field(sa_column=Column(String(36), nullable=False))
    account_id: int = _account_fk()
    user_name: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    user_name_ci: str = Field(sa_column=Column(String(MAX_INDEXED * LOWERED_GROWTH), nullable=False))
    external_id: str | None = Field(default=None, sa_column=Column(String(MAX_INDEXED)))
    display_name: str | None = Field(default=None, sa_column=Column(Text))
    nick_name: str | None = Field(default=None, sa_column=Column(Text))
    profile_url: str | None = Field(default=None, sa_column=Column(Text))
    title: str | None = Field(default=None, sa_column=Column(Text))
    user_type: str | None = Field(default=None, sa_column=Column(Text))
    preferred_language: str | None = Field(default=None, sa_column=Column(Text))
    locale: str | None = Field(default=None, sa_column=Column(Text))
    timezone: str | None = Field(default=None, sa_column=Column(Text))
    name_formatted: str | None = Field(default=None, sa_column=Column(Text))
    name_family: str | None = Field(default=None, sa_column=Column(Text))
    name_given: str | None = Field(default=None, sa_column=Column(Text))
    name_middle: str | None = Field(default=None, sa_column=Column(Text))
    name_honorific_prefix: str | None = Field(default=None, sa_column=Column(Text))
    name_honorific_suffix: str | None = Field(default=None, sa_column=Column(Text))
    email: str | None = Field(default=None, sa_column=Column(String(MAX_EMAIL)))
    email_ci: str | None = Field(default=None, sa_column=Column(String(MAX_EMAIL * LOWERED_GROWTH)))
    # NULL is "unassigned" (RFC 7644 §3.5.2.2 after a remove); only False deactivates.
    active: bool | None = Field(default=True, sa_column=Column(Boolean, nullable=True))
    multi_valued: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    employee_number: str | None = Field(default=None, sa_column=Column(Text))
    cost_center: str | None = Field(default=None, sa_column=Column(Text))
    organization: str | None = Field(default=None, sa_column=Column(Text))
    division: str | None = Field(default=None, sa_column=Column(Text))
    department: str | None = Field(default=None, sa_column=Column(Text))
    manager_id: str | None = Field(default=None, sa_column=Column(String(MAX_INDEXED)))
    provisioned_by: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    # Set when the identity provider deleted the user and a tombstone is kept: the user is gone from
    # SCIM and from lists, and comes back with the same id if provisioned again before the account's
    # retention ends. `deprovisioned_groups` remembers the native groups they were in, as
    # [[group id, added_via], …], to restore them.
    deprovisioned_at: datetime | None = _ts(nullable=True)
    deprovisioned_groups: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Attributes of schema extensions other than the enterprise one, as sent: {urn: {name: value}}.
    extensions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    # The app integration whose token created the user (provenance; None: created before
    # integrations, by an unbound token, or in the admin UI). Who assigns them now: `user_assignments`.
    app_integration_id: str | None = Field(default=None, sa_column=Column(String(36)))


class UserCount(SQLModel, table=True):
    """How many users each account has, tombstones not counted, kept by triggers on `users`
    (migrations 0006 and 0007) so that a list's total is a sum of a few rows rather than a count of
    every user. On PostgreSQL each connection
    adds to its own slot (its backend's pid modulo USER_COUNT_SLOTS), so parallel creates do not
    queue on one row; the account's count is the sum of its slots. SQLite, one writer at a time, uses
    slot 0. A migration that rebuilds `users` on SQLite (batch mode copies the table) drops its
    triggers, and must create them again."""

    __tablename__ = "user_counts"
    __table_args__ = (PrimaryKeyConstraint("account_id", "slot"),)

    account_id: int = _account_fk()
    slot: int = Field(sa_column=Column(Integer, nullable=False))
    users: int = Field(sa_column=Column(BigInteger, nullable=False))


USER_COUNT_SLOTS = 16


class UserAttributeValue(SQLModel, table=True):
    """One element of a multi-valued user attribute (emails, phoneNumbers, addresses…), for filtering;
    `position` numbers a user's elements."""

    __tablename__ = "user_attribute_values"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "user_id", "position"),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.id"], ondelete="CASCADE"),
        Index(None, "account_id", "attribute", "value_ci"),
    )

    account_id: int = _account_column()
    user_id: str = Field(sa_column=Column(String(36), nullable=False))
    position: int = Field(sa_column=Column(Integer, nullable=False))
    # An attribute name (emails), or "urn:name" lower-cased for an attribute of a custom extension.
    attribute: str = Field(sa_column=Column(String(512), nullable=False))
    type_ci: str | None = Field(default=None, sa_column=Column(String(64)))
    value_ci: str | None = Field(default=None, sa_column=Column(String(512)))
    is_primary: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


_IDP_GROUP_WITHOUT_INTEGRATION = "managed_by = 'IDENTITY_PROVIDER' AND app_integration_id IS NULL"
_IDP_GROUP_OF_INTEGRATION = "managed_by = 'IDENTITY_PROVIDER' AND app_integration_id IS NOT NULL"


class UserGroup(SQLModel, table=True):
    """A user group at account, organization or project scope. `scope` is '' for the account,
    'org' or 'org/project', so that identifiers are unique per scope on both databases."""

    __tablename__ = "user_groups"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "id"),
        UniqueConstraint("account_id", "scope", "identifier"),
        Index(None, "account_id", "display_name_ci"),
        Index(None, "account_id", "external_id"),
        Index(None, "account_id", "created_at", "id"),  # lists' order: a page is read off the index
        # An identity-provider group's name is unique among the groups of its app integration, and
        # among those that have none (from before integrations, or created with an unbound token):
        # a second app pushing a group of the same name gets a group of its own beside the first.
        Index(
            "uq_user_groups_idp_display_name",
            "account_id",
            "display_name_ci",
            unique=True,
            sqlite_where=text(_IDP_GROUP_WITHOUT_INTEGRATION),
            postgresql_where=text(_IDP_GROUP_WITHOUT_INTEGRATION),
        ),
        Index(
            "uq_user_groups_integration_display_name",
            "account_id",
            "app_integration_id",
            "display_name_ci",
            unique=True,
            sqlite_where=text(_IDP_GROUP_OF_INTEGRATION),
            postgresql_where=text(_IDP_GROUP_OF_INTEGRATION),
        ),
        ForeignKeyConstraint(
            ["account_id", "org_identifier"], ["organizations.account_id", "organizations.identifier"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["account_id", "org_identifier", "project_identifier"],
            ["projects.account_id", "projects.org_identifier", "projects.identifier"],
            ondelete="CASCADE",
        ),
    )

    id: str = Field(sa_column=Column(String(36), nullable=False))
    account_id: int = _account_fk()
    org_identifier: str | None = Field(default=None, sa_column=Column(String(64)))
    project_identifier: str | None = Field(default=None, sa_column=Column(String(64)))
    scope: str = Field(default="", sa_column=Column(String(130), nullable=False))
    identifier: str = Field(sa_column=Column(String(128), nullable=False))
    display_name: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    display_name_ci: str = Field(sa_column=Column(String(MAX_INDEXED * LOWERED_GROWTH), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    external_id: str | None = Field(default=None, sa_column=Column(String(MAX_INDEXED)))
    managed_by: str = Field(sa_column=Column(String(24), nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    # Attributes of schema extensions, as sent: {urn: {name: value}}.
    extensions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    # The app integration whose token created the group, which owns it: only that integration's
    # tokens see it over SCIM (None: every identity-provider token does; see groups.visible_to).
    app_integration_id: str | None = Field(default=None, sa_column=Column(String(36)))


class GroupMembership(SQLModel, table=True):
    __tablename__ = "group_memberships"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "group_id", "user_id"),
        ForeignKeyConstraint(["account_id", "group_id"], ["user_groups.account_id", "user_groups.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.id"], ondelete="CASCADE"),
        Index(None, "account_id", "user_id"),
    )

    account_id: int = _account_column()
    group_id: str = Field(sa_column=Column(String(36), nullable=False))
    user_id: str = Field(sa_column=Column(String(36), nullable=False))
    added_via: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = _ts()


class GroupMemberCount(SQLModel, table=True):
    """How many members each group has, kept by triggers on `group_memberships` (migration 0014) so
    that a group's member count is a sum of a few rows rather than a count of its memberships. Slots
    as in `UserCount`: on PostgreSQL each connection adds to its own (its backend's pid modulo
    GROUP_MEMBER_COUNT_SLOTS); SQLite uses slot 0. A migration that rebuilds `group_memberships` on
    SQLite (batch mode copies the table) drops its triggers, and must create them again."""

    __tablename__ = "group_member_counts"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "group_id", "slot"),
        ForeignKeyConstraint(["account_id", "group_id"], ["user_groups.account_id", "user_groups.id"], ondelete="CASCADE"),
    )

    account_id: int = _account_column()
    group_id: str = Field(sa_column=Column(String(36), nullable=False))
    slot: int = Field(sa_column=Column(Integer, nullable=False))
    members: int = Field(sa_column=Column(BigInteger, nullable=False))


GROUP_MEMBER_COUNT_SLOTS = 16


class AppIntegration(SQLModel, table=True):
    """One app of the identity provider connected to the account (Harness's FirstGen or NextGen app
    integration), with the health of its provisioning as the requests of its tokens showed it.
    Integrations are disconnected, never deleted: users and groups keep naming them."""

    __tablename__ = "app_integrations"
    __table_args__ = (PrimaryKeyConstraint("account_id", "id"), UniqueConstraint("account_id", "name_ci"))

    account_id: int = _account_fk()
    id: str = Field(sa_column=Column(String(36), nullable=False))
    name: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    name_ci: str = Field(sa_column=Column(String(MAX_INDEXED * LOWERED_GROWTH), nullable=False))
    generation: str = Field(sa_column=Column(String(16), nullable=False))
    provider: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = _ts()
    disconnected_at: datetime | None = _ts(nullable=True)
    last_success_at: datetime | None = _ts(nullable=True)
    last_failure_at: datetime | None = _ts(nullable=True)
    last_failure_status: int | None = Field(default=None, sa_column=Column(Integer))
    last_failure_scim_type: str | None = Field(default=None, sa_column=Column(String(32)))
    last_failure_detail: str | None = Field(default=None, sa_column=Column(Text))


class AppIntegrationActivity(SQLModel, table=True):
    """How many SCIM requests an integration's tokens made in one hour, and how many failed: what
    its health's 24-hour figures add up. Written by each instance about once a second (see
    app.integration_activity), added to what other instances wrote."""

    __tablename__ = "app_integration_activity"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "integration_id", "hour"),
        ForeignKeyConstraint(["account_id", "integration_id"], ["app_integrations.account_id", "app_integrations.id"], ondelete="CASCADE"),
    )

    account_id: int = _account_column()
    integration_id: str = Field(sa_column=Column(String(36), nullable=False))
    hour: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    requests: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    client_failures: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    server_failures: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class UserAssignment(SQLModel, table=True):
    """An app integration assigns a user: its token created, changed or adopted them. SSO logins
    are allowed only to users the authenticating integration assigns (services.integrations)."""

    __tablename__ = "user_assignments"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "user_id", "integration_id"),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["account_id", "integration_id"], ["app_integrations.account_id", "app_integrations.id"], ondelete="CASCADE"),
        Index(None, "account_id", "integration_id"),
    )

    account_id: int = _account_column()
    user_id: str = Field(sa_column=Column(String(36), nullable=False))
    integration_id: str = Field(sa_column=Column(String(36), nullable=False))
    assigned_at: datetime = _ts()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "token_id"),
        ForeignKeyConstraint(["account_id", "app_integration_id"], ["app_integrations.account_id", "app_integrations.id"]),
    )

    account_id: int = _account_fk()
    token_id: str = Field(sa_column=Column(String(32), nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False))
    permissions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    expires_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    last_used_at: datetime | None = _ts(nullable=True)
    # The app integration the token provisions for (None: a token of its own, as before integrations).
    app_integration_id: str | None = Field(default=None, sa_column=Column(String(36)))


class ExtensionSchema(SQLModel, table=True):
    """A custom schema extension an account's admin declared (`python -m app extensions add`): its
    attributes, with their types, are advertised in /Schemas and their values type-checked.
    `urn_ci` is the URN lower-cased (URNs are case-insensitive); `attributes` as SCIM describes
    them: [{"name", "type", "multiValued", "required", "caseExact", "description"}]."""

    __tablename__ = "extension_schemas"
    __table_args__ = (PrimaryKeyConstraint("account_id", "urn_ci"),)

    account_id: int = _account_fk()
    urn_ci: str = Field(sa_column=Column(String(MAX_INDEXED * LOWERED_GROWTH), nullable=False))
    urn: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    resource_type: str = Field(sa_column=Column(String(16), nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    attributes: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    declared_at: datetime = _ts()


class ExtensionAttribute(SQLModel, table=True):
    """An attribute of a schema extension an account's identity provider has sent (`urn`, `name` as
    first sent; `key_ci`, "urn:name" lower-cased, makes them one whatever the case): recorded the
    first time, with an `extension.discovered` audit event, so that the admin can see it."""

    __tablename__ = "extension_attributes"
    __table_args__ = (PrimaryKeyConstraint("account_id", "resource_type", "key_ci"),)

    account_id: int = _account_fk()
    resource_type: str = Field(sa_column=Column(String(16), nullable=False))
    key_ci: str = Field(sa_column=Column(String(2 * MAX_INDEXED * LOWERED_GROWTH), nullable=False))
    urn: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    name: str = Field(sa_column=Column(String(MAX_INDEXED), nullable=False))
    discovered_at: datetime = _ts()


class FeatureFlag(SQLModel, table=True):
    __tablename__ = "feature_flags"
    __table_args__ = (PrimaryKeyConstraint("account_id", "name"),)

    account_id: int = _account_fk()
    name: str = Field(sa_column=Column(String(64), nullable=False))
    enabled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))


_NOT_A_REQUEST = "action <> 'scim.request'"


class AuditEvent(SQLModel, table=True):
    """An entry of the activity log; `id` counts up (a later event has a larger id). SQLite counts
    up only a column that is the whole primary key, so there — one node, never distributed — the
    migrations keep `id` alone as the key; PostgreSQL's is (account_id, id)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "id"),
        Index(None, "account_id", "occurred_at"),
        Index(None, "account_id", "resource_type", "resource_id"),
        Index(None, "account_id", "status"),
        # The log's change events, newest first, without walking past the many records of requests.
        Index("ix_audit_events_changes", "account_id", "id", postgresql_where=text(_NOT_A_REQUEST), sqlite_where=text(_NOT_A_REQUEST)),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntegerPK, nullable=False, autoincrement=True))
    account_id: int = _account_fk()
    occurred_at: datetime = _ts()
    caller: str = Field(sa_column=Column(String(64), nullable=False))
    channel: str = Field(sa_column=Column(String(16), nullable=False))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    resource_type: str = Field(sa_column=Column(String(32), nullable=False))
    resource_id: str | None = Field(default=None, sa_column=Column(String(MAX_INDEXED)))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Set on a SCIM request's record (action `scim.request`, app/activity.py); null on other events.
    request_id: str | None = Field(default=None, sa_column=Column(String(64)))
    method: str | None = Field(default=None, sa_column=Column(String(8)))
    route: str | None = Field(default=None, sa_column=Column(String(160)))
    status: int | None = Field(default=None, sa_column=Column(Integer))
    scim_type: str | None = Field(default=None, sa_column=Column(String(32)))
    error_detail: str | None = Field(default=None, sa_column=Column(Text))
    integration_id: str | None = Field(default=None, sa_column=Column(String(36)))
    # How many requests a record of SCIM requests stands for: 1, or a summary of successful reads.
    requests: int = Field(default=1, sa_column=Column(Integer, nullable=False, default=1, server_default=text("1")))


# How the tables join: always within one account, by the keys above.
MEMBERSHIP_GROUP = and_(col(GroupMembership.account_id) == col(UserGroup.account_id), col(GroupMembership.group_id) == col(UserGroup.id))
MEMBERSHIP_USER = and_(col(GroupMembership.account_id) == col(User.account_id), col(GroupMembership.user_id) == col(User.id))
INDEX_ROW_USER = and_(col(UserAttributeValue.account_id) == col(User.account_id), col(UserAttributeValue.user_id) == col(User.id))

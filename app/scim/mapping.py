"""Where each SCIM attribute lives in the database: one table, read by rendering, parsing,
filter compilation and sorting."""

from __future__ import annotations

from app.scim.schema import ENTERPRISE_USER

# Canonical SCIM key -> users column. Multi-valued attributes live in users.multi_valued.
USER_COLUMNS: dict[str, str] = {
    "externalId": "external_id",
    "userName": "user_name",
    "displayName": "display_name",
    "nickName": "nick_name",
    "profileUrl": "profile_url",
    "title": "title",
    "userType": "user_type",
    "preferredLanguage": "preferred_language",
    "locale": "locale",
    "timezone": "timezone",
    "active": "active",
    "name.formatted": "name_formatted",
    "name.familyName": "name_family",
    "name.givenName": "name_given",
    "name.middleName": "name_middle",
    "name.honorificPrefix": "name_honorific_prefix",
    "name.honorificSuffix": "name_honorific_suffix",
    f"{ENTERPRISE_USER}:employeeNumber": "employee_number",
    f"{ENTERPRISE_USER}:costCenter": "cost_center",
    f"{ENTERPRISE_USER}:organization": "organization",
    f"{ENTERPRISE_USER}:division": "division",
    f"{ENTERPRISE_USER}:department": "department",
    f"{ENTERPRISE_USER}:manager.value": "manager_id",
}

# Columns whose content is already lower-cased, so case-insensitive lookups hit a plain index.
USER_FILTER_OVERRIDES: dict[str, str] = {"userName": "user_name_ci"}

GROUP_COLUMNS: dict[str, str] = {"externalId": "external_id", "displayName": "display_name"}
GROUP_FILTER_OVERRIDES: dict[str, str] = {"displayName": "display_name_ci"}

PRELOWERED = frozenset({"user_name_ci", "display_name_ci", "email_ci"})

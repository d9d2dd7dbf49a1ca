"""SCIM attribute definitions (RFC 7643 §4 and §8.7.1): the one description of what this service
implements. Discovery (`/Schemas`), filter compilation, PATCH path resolution and attribute projection
all read it, so what is advertised is exactly what works."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from app.services.extensions import CUSTOM_EXTENSIONS

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


class AttributeType(enum.StrEnum):
    """RFC 7643 §2.3: the data type of an attribute."""

    STRING = "string"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATE_TIME = "dateTime"
    REFERENCE = "reference"
    BINARY = "binary"
    COMPLEX = "complex"


class Mutability(enum.StrEnum):
    """RFC 7643 §7: whether and when a client may set an attribute."""

    READ_ONLY = "readOnly"
    READ_WRITE = "readWrite"
    IMMUTABLE = "immutable"
    WRITE_ONLY = "writeOnly"


class Returned(enum.StrEnum):
    """RFC 7643 §7: when an attribute is returned."""

    ALWAYS = "always"
    NEVER = "never"
    DEFAULT = "default"
    REQUEST = "request"


class Uniqueness(enum.StrEnum):
    """RFC 7643 §7: within what an attribute's value is unique."""

    NONE = "none"
    SERVER = "server"
    GLOBAL = "global"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttributeType = AttributeType.STRING
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = Mutability.READ_WRITE
    returned: Returned = Returned.DEFAULT
    uniqueness: Uniqueness = Uniqueness.NONE
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = field(default_factory=tuple)
    # An attribute of a schema extension this service does not define (`custom_extension_path`):
    # its value is any JSON value, kept as sent.
    open: bool = False

    def sub(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((s for s in self.sub_attributes if s.name.lower() == lowered), None)

    @property
    def read_only(self) -> bool:
        return self.mutability == Mutability.READ_ONLY

    def to_scim(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in (AttributeType.STRING, AttributeType.REFERENCE, AttributeType.BINARY):
            doc["caseExact"] = self.case_exact
        if self.type not in (AttributeType.COMPLEX, AttributeType.BOOLEAN):
            doc["uniqueness"] = self.uniqueness
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            doc["subAttributes"] = [s.to_scim() for s in self.sub_attributes]
        return doc


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...],
    value_type: AttributeType = AttributeType.STRING,
    *,
    value_case_exact: bool = False,
    ref_types: tuple[str, ...] = (),
) -> Attribute:
    """The common shape of RFC 7643 multi-valued attributes: value, display, type, primary."""
    return Attribute(
        name,
        AttributeType.COMPLEX,
        multi_valued=True,
        description=description,
        sub_attributes=(
            Attribute("value", value_type, description=f"The {name} value.", case_exact=value_case_exact, reference_types=ref_types),
            Attribute("display", description="A human-readable name, primarily used for display purposes."),
            Attribute("type", description="A label indicating the attribute's function.", canonical_values=types),
            Attribute("primary", AttributeType.BOOLEAN, description="Indicates the 'primary' or preferred value."),
        ),
    )


_NAME = Attribute(
    "name",
    AttributeType.COMPLEX,
    description="The components of the user's real name.",
    sub_attributes=(
        Attribute("formatted", description="The full name, formatted for display."),
        Attribute("familyName", description="The family name."),
        Attribute("givenName", description="The given name."),
        Attribute("middleName", description="The middle name(s)."),
        Attribute("honorificPrefix", description="The honorific prefix(es), e.g. 'Ms.'."),
        Attribute("honorificSuffix", description="The honorific suffix(es), e.g. 'III'."),
    ),
)

_ADDRESS_TYPES = ("work", "home", "other")
_ADDRESSES = Attribute(
    "addresses",
    AttributeType.COMPLEX,
    multi_valued=True,
    description="Physical mailing addresses.",
    sub_attributes=(
        Attribute("formatted", description="The full mailing address, formatted for display."),
        Attribute("streetAddress", description="The full street address component."),
        Attribute("locality", description="The city or locality component."),
        Attribute("region", description="The state or region component."),
        Attribute("postalCode", description="The zip code or postal code component."),
        Attribute("country", description="The country name component (ISO 3166-1 alpha-2)."),
        Attribute("type", description="A label indicating the attribute's function.", canonical_values=_ADDRESS_TYPES),
        Attribute("primary", AttributeType.BOOLEAN, description="Indicates the 'primary' or preferred address."),
    ),
)

_GROUPS = Attribute(
    "groups",
    AttributeType.COMPLEX,
    multi_valued=True,
    description="The groups the user belongs to. Read-only: change membership through the Group resource.",
    mutability=Mutability.READ_ONLY,
    sub_attributes=(
        Attribute("value", description="The identifier of the group.", mutability=Mutability.READ_ONLY),
        Attribute(
            "$ref",
            AttributeType.REFERENCE,
            description="The URI of the group.",
            mutability=Mutability.READ_ONLY,
            reference_types=("Group",),
        ),
        Attribute("display", description="The group's display name.", mutability=Mutability.READ_ONLY),
        Attribute(
            "type", description="direct or indirect membership.", mutability=Mutability.READ_ONLY, canonical_values=("direct", "indirect")
        ),
    ),
)

# Multi-valued user attributes kept as sent and indexed in user_attribute_values.
USER_MULTI_VALUED = (
    _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
    _multi("phoneNumbers", "Phone numbers for the user.", ("work", "home", "mobile", "fax", "pager", "other")),
    _multi("ims", "Instant messaging addresses for the user.", ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
    _multi("photos", "URLs of photos of the user.", ("photo", "thumbnail"), AttributeType.REFERENCE, ref_types=("external",)),
    _ADDRESSES,
    _multi("entitlements", "Entitlements of the user.", ()),
    _multi("roles", "Roles of the user.", ()),
    _multi("x509Certificates", "X.509 certificates of the user (DER, base64).", (), AttributeType.BINARY, value_case_exact=True),
)

USER_SCHEMA = Schema(
    CORE_USER,
    "User",
    "User Account",
    (
        Attribute(
            "userName",
            description="Unique identifier for the user, typically the sign-in name.",
            required=True,
            uniqueness=Uniqueness.SERVER,
        ),
        _NAME,
        Attribute("displayName", description="The name of the user, suitable for display."),
        Attribute("nickName", description="The casual way to address the user."),
        Attribute("profileUrl", AttributeType.REFERENCE, description="A URI of the user's online profile.", reference_types=("external",)),
        Attribute("title", description="The user's title, such as 'Vice President'."),
        Attribute("userType", description="The relationship between the organization and the user."),
        Attribute("preferredLanguage", description="The user's preferred written or spoken language."),
        Attribute("locale", description="The user's default location for localisation."),
        Attribute("timezone", description="The user's time zone in IANA format."),
        Attribute("active", AttributeType.BOOLEAN, description="The user's administrative status; false deactivates the user."),
        *USER_MULTI_VALUED,
        _GROUPS,
    ),
)

ENTERPRISE_SCHEMA = Schema(
    ENTERPRISE_USER,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attribute("employeeNumber", description="A string identifier assigned by the organization."),
        Attribute("costCenter", description="The name of a cost center."),
        Attribute("organization", description="The name of an organization."),
        Attribute("division", description="The name of a division."),
        Attribute("department", description="The name of a department."),
        Attribute(
            "manager",
            AttributeType.COMPLEX,
            description="The user's manager.",
            sub_attributes=(
                Attribute("value", description="The id of the manager's User resource."),
                Attribute(
                    "$ref", AttributeType.REFERENCE, description="The URI of the manager's User resource.", reference_types=("User",)
                ),
                Attribute("displayName", description="The manager's display name.", mutability=Mutability.READ_ONLY),
            ),
        ),
    ),
)

GROUP_SCHEMA = Schema(
    CORE_GROUP,
    "Group",
    "Group",
    (
        Attribute("displayName", description="A human-readable name for the group.", required=True),
        Attribute(
            "members",
            AttributeType.COMPLEX,
            multi_valued=True,
            description="The members of the group (users of the same account).",
            sub_attributes=(
                Attribute("value", description="The id of the member.", mutability=Mutability.IMMUTABLE),
                Attribute(
                    "$ref",
                    AttributeType.REFERENCE,
                    description="The URI of the member.",
                    mutability=Mutability.IMMUTABLE,
                    reference_types=("User",),
                ),
                Attribute("display", description="The member's display name.", mutability=Mutability.READ_ONLY),
                Attribute("type", description="The kind of member.", mutability=Mutability.IMMUTABLE, canonical_values=("User",)),
            ),
        ),
    ),
)

# Attributes every resource has (RFC 7643 §3.1); not part of any schema's attribute list.
ID = Attribute(
    "id",
    description="Unique identifier assigned by the service provider.",
    case_exact=True,
    mutability=Mutability.READ_ONLY,
    returned=Returned.ALWAYS,
    uniqueness=Uniqueness.SERVER,
)
EXTERNAL_ID = Attribute("externalId", description="Identifier assigned by the provisioning client.", case_exact=True)
META = Attribute(
    "meta",
    AttributeType.COMPLEX,
    mutability=Mutability.READ_ONLY,
    sub_attributes=(
        Attribute("resourceType", mutability=Mutability.READ_ONLY, case_exact=True),
        Attribute("created", AttributeType.DATE_TIME, mutability=Mutability.READ_ONLY),
        Attribute("lastModified", AttributeType.DATE_TIME, mutability=Mutability.READ_ONLY),
        Attribute("location", AttributeType.REFERENCE, mutability=Mutability.READ_ONLY, case_exact=True, reference_types=("uri",)),
        Attribute("version", mutability=Mutability.READ_ONLY, case_exact=True),
    ),
)
COMMON = (ID, EXTERNAL_ID, META)


# Identity, not value, is a resource type's equality and hash: there are two, and a value hash walks
# every attribute of its schemas (12 µs for User), which a lookup keyed by one paid on every request.
@dataclass(frozen=True, eq=False)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()
    description: str = ""

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)


USER = ResourceType("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA,), "User Account")
GROUP = ResourceType("Group", "/Groups", GROUP_SCHEMA, (), "Group")
RESOURCE_TYPES = (USER, GROUP)
ALL_SCHEMAS = (USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA)


@dataclass(frozen=True)
class ResolvedPath:
    """A path resolved against a resource type: `schema` is the URN the attribute belongs to
    (the core schema or an extension), `attribute` the top-level attribute (None when the path
    names a whole extension), `sub` a sub-attribute."""

    schema: str
    attribute: Attribute | None
    sub: Attribute | None = None
    is_extension: bool = False

    @property
    def key(self) -> str:
        """Canonical dotted form: `name.givenName`, `urn:…:User:manager.value`."""
        if self.attribute is None:
            return self.schema
        base = f"{self.schema}:{self.attribute.name}" if self.is_extension else self.attribute.name
        return f"{base}.{self.sub.name}" if self.sub else base

    @property
    def top_key(self) -> str:
        """The key of the top-level attribute (or the extension URN)."""
        if self.attribute is None:
            return self.schema
        return f"{self.schema}:{self.attribute.name}" if self.is_extension else self.attribute.name


def split_urn(path: str, resource: ResourceType) -> tuple[str, str]:
    """Split an optional schema URN prefix off `path` (case-insensitive, RFC 7644 §3.10)."""
    lowered = path.lower()
    for schema in sorted(resource.schemas, key=lambda s: -len(s.id)):
        urn = schema.id.lower()
        if lowered == urn:
            return schema.id, ""
        if lowered.startswith(urn + ":"):
            return schema.id, path[len(urn) + 1 :]
    return resource.schema.id, path


# Every attribute name of every request body, filter and PATCH path is resolved: the answers are kept,
# up to a bound (the names come from clients, and most are the same few dozen).
_RESOLVED: dict[tuple[str, str], ResolvedPath | None] = {}
_RESOLVED_LIMIT = 4096


def resolve(path: str, resource: ResourceType) -> ResolvedPath | None:
    """Resolve `attr`, `attr.sub` or `urn:…:attr[.sub]`; None when nothing of that name exists."""
    key = (resource.name, path)
    try:
        return _RESOLVED[key]
    except KeyError:
        pass
    found = _resolve(path, resource)
    if len(_RESOLVED) < _RESOLVED_LIMIT:
        _RESOLVED[key] = found
    return found


def _resolve(path: str, resource: ResourceType) -> ResolvedPath | None:
    urn, rest = split_urn(path, resource)
    core = resource.schema.id
    if rest == "":
        if urn == core:
            return None
        return ResolvedPath(urn, None, None, True)
    if path.lower().startswith("urn:") and urn == core and not path.lower().startswith(core.lower()):
        return custom_extension_path(path, resource)  # a schema URN this service does not define
    name, _, sub_name = rest.partition(".")
    schema = next(s for s in resource.schemas if s.id == urn)
    attribute = schema.attribute(name)
    if attribute is None and urn == core:
        attribute = next((a for a in COMMON if a.name.lower() == name.lower()), None)
        if attribute is None and not path.lower().startswith("urn:"):
            # An unqualified extension attribute (`manager eq …` in Entra's older examples).
            for extension in resource.extensions:
                attribute = extension.attribute(name)
                if attribute is not None:
                    urn = extension.id
                    break
    if attribute is None:
        return None
    if not sub_name:
        return ResolvedPath(urn, attribute, None, urn != core)
    sub = attribute.sub(sub_name)
    if sub is None:
        return None
    return ResolvedPath(urn, attribute, sub, urn != core)


def custom_extension_path(path: str, resource: ResourceType) -> ResolvedPath | None:
    """A path into a schema extension this service does not define, such as Entra's custom
    attributes: `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User` (the whole
    extension) or `…:2.0:User:costCode` (one attribute, whose value is kept as sent; see
    `compat.open_value`). None for anything else, sub-attributes of such an attribute included."""
    found = CUSTOM_EXTENSIONS[resource.name].fullmatch(path)
    if found is None:
        return None
    urn, name = found.groups()
    return ResolvedPath(urn, None if name is None else Attribute(name, open=True), None, True)

"""Compile SCIM filters and sortBy into SQL (RFC 7644 §3.4.2.2, §3.4.2.3).

Everything runs in the database with bound parameters. Each leaf yields a two-valued condition
(never NULL), so `not` behaves as a reader expects even when attributes are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, exists, literal, not_, or_, select, true
from sqlmodel import col

from app.db.casefold import fold
from app.db.models import INDEX_ROW_USER, MEMBERSHIP_GROUP, MEMBERSHIP_USER, Channel, GroupMembership, User, UserAttributeValue, UserGroup
from app.errors import InvalidFilter, InvalidInput
from app.scim.filter import And, Compare, Expr, Not, Or, Present, Value, ValuePath, parse_filter
from app.scim.mapping import GROUP_COLUMNS, GROUP_FILTER_OVERRIDES, PRELOWERED, USER_COLUMNS, USER_FILTER_OVERRIDES
from app.scim.schema import GROUP, USER, Attribute, AttributeType, ResolvedPath, ResourceType, resolve
from app.services import extensions
from app.services.groups import visible_to
from app.validation import LIKE_ESCAPE, like_escaped

_SUBSTRING_OPS = ("co", "sw", "ew")


def _like_pattern(value: str, op: str) -> str:
    escaped = like_escaped(value)
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]


def _parse_datetime(value: Value, attr: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidFilter(f"{attr} is compared with a dateTime string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidFilter(f"{attr}: {value!r} is not an ISO 8601 dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Target:
    """A filterable SQL expression with the SCIM type rules that apply to it."""

    expr: Any
    attribute: Attribute
    prelowered: bool = False


# The value of a custom extension attribute, in its index rows: lower-cased, compared without case.
_EXTENSION_VALUE = _Target(col(UserAttributeValue.value_ci), Attribute("value"), prelowered=True)


def compare(target: _Target, op: str, value: Value, name: str, binder: _Binder | None = None) -> ColumnElement[bool]:
    """One comparison, two-valued: an absent attribute matches only `ne` (and `eq null`). The value
    is checked and prepared (`_operand`), then compared inline, or through `binder` as a parameter."""
    column = target.expr
    if value is None:
        if op == "eq":
            return column.is_(None)
        if op == "ne":
            return column.is_not(None)
        raise InvalidFilter(f"{name}: null can only be compared with eq or ne")
    operand = _operand(target, op, value, name)
    condition = _condition(target, op, operand if binder is None else binder.bind(target, op, name, operand))
    if op == "ne":
        return or_(column.is_(None), condition)
    return and_(column.is_not(None), condition)


def _operand(target: _Target, op: str, value: Value, name: str) -> Any:
    """The value a comparison binds, checked against the attribute's type and in the form the SQL
    compares it in: a bool, an aware datetime, text (lower-cased for a `*_ci` column unless the
    attribute is case-exact), or a LIKE pattern for the substring operators."""
    kind = target.attribute.type
    if kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise InvalidFilter(f"{name} is a boolean; compare it with true or false")
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"{name} is a boolean and supports only eq and ne")
        return value
    if kind == "dateTime":
        if op in _SUBSTRING_OPS:
            raise InvalidFilter(f"{name} is a dateTime and does not support {op}")
        return _parse_datetime(value, name)
    if isinstance(value, bool):
        raise InvalidFilter(f"{name} is a string; a boolean value cannot match it")
    text = value if isinstance(value, str) else str(value)
    if target.prelowered and not target.attribute.case_exact:
        text = text.lower()
    return _like_pattern(text, op) if op in _SUBSTRING_OPS else text


def _condition(target: _Target, op: str, operand: Any) -> ColumnElement[bool]:
    """The comparison of `target` with a prepared operand (a value, or a parameter standing for one).

    A string comparison that is not case-exact puts both sides through the same fold on either
    database (app.db.casefold): a `*_ci` column holds str.lower() of the value, and the operand is
    str.lower()ed too, so eq, ne and the orderings use the column's index; substring operators, and
    columns without such a copy, fold both sides in SQL."""
    column, kind = target.expr, target.attribute.type
    if kind == "boolean":  # eq or ne only (see _operand)
        return column == operand if op == "eq" else column != operand
    if kind == "dateTime":
        return _ordered(column, op, operand)
    if target.attribute.case_exact:
        if op in _SUBSTRING_OPS:
            return column.like(operand, escape=LIKE_ESCAPE)
        return _ordered(column, op, operand)
    if op in _SUBSTRING_OPS:
        return fold(column).like(_folded(operand), escape=LIKE_ESCAPE)
    if target.prelowered:
        return _ordered(column, op, operand)
    return _ordered(fold(column), op, _folded(operand))


def _folded(operand: Any) -> ColumnElement[str]:
    """`fold` of a text operand. Inline text is bound as text by itself; a parameter standing for
    it is given that type here, as lower() of a parameter of unknown type is ambiguous to PostgreSQL."""
    return fold(operand if isinstance(operand, str) else bindparam(operand.key, type_=String()))


_ORDERED = {"eq": "__eq__", "ne": "__ne__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}


def _ordered(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op not in _ORDERED:
        raise InvalidFilter(f"operator {op} does not apply here")
    return getattr(column, _ORDERED[op])(value)


def present(target: _Target) -> ColumnElement[bool]:
    if target.attribute.type in ("string", "reference", "binary"):
        return and_(target.expr.is_not(None), target.expr != "")
    return target.expr.is_not(None)


def _logical(expr: And | Or | Not, compile_part: Callable[[Expr], ColumnElement[bool]]) -> ColumnElement[bool]:
    """and / or / not, compiled part by part."""
    if isinstance(expr, And):
        return and_(compile_part(expr.left), compile_part(expr.right))
    if isinstance(expr, Or):
        return or_(compile_part(expr.left), compile_part(expr.right))
    return not_(compile_part(expr.expr))


class _Compiler:
    """Compiles one filter for one resource type; its values go inline, or through `binder`."""

    resource: ResourceType
    model: Any
    columns: dict[str, str]
    overrides: dict[str, str]

    def __init__(self, binder: _Binder | None = None) -> None:
        self.binder = binder

    def column_key(self, path: ResolvedPath) -> str:
        return path.key

    def _column_target(self, path: ResolvedPath) -> _Target | None:
        """The column behind a single-valued attribute (meta and id included), if any."""
        meta = self.meta_target(path, self.model.created_at, self.model.updated_at)
        if meta is not None:
            return meta
        assert path.attribute is not None
        if path.attribute.name == "id":
            return _Target(self.model.id, path.attribute)
        key = self.column_key(path)
        column_name = self.overrides.get(key) or self.columns.get(key)
        if column_name is None:
            return None
        attribute = path.sub or path.attribute
        if attribute.type == AttributeType.COMPLEX:
            attribute = path.attribute.sub("value") or attribute
        return _Target(getattr(self.model, column_name), attribute, column_name in PRELOWERED)

    def _column_present(self, path: ResolvedPath, raw: str) -> ColumnElement[bool]:
        """`raw pr` for a single-valued attribute stored in a column."""
        target = self._column_target(path)
        if target is None:
            raise InvalidFilter(f"'{raw}' cannot be filtered on")
        return present(target)

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, (And, Or, Not)):
            return _logical(expr, self.compile)
        if isinstance(expr, ValuePath):
            path = self._resolve(expr.attr.path)
            if path.attribute is None or not path.attribute.multi_valued or path.sub is not None:
                raise InvalidFilter(f"{expr.attr.path}[...] needs a multi-valued attribute")
            return self.multi_valued(path, expr.filter)
        path = self._resolve(expr.attr.path)
        if isinstance(expr, Present):
            return self.leaf_present(path, expr.attr.path)
        return self.leaf_compare(path, expr.op, expr.value, expr.attr.path)

    def _resolve(self, raw: str) -> ResolvedPath:
        path = resolve(raw, self.resource)
        if path is None or path.attribute is None:
            raise InvalidFilter(f"unknown attribute '{raw}' for {self.resource.name}")
        return path

    def meta_target(self, path: ResolvedPath, created: Any, modified: Any) -> _Target | None:
        if path.attribute is None or path.attribute.name != "meta":
            return None
        if path.sub is None:
            raise InvalidFilter("meta needs a sub-attribute, e.g. meta.lastModified")
        if path.sub.name == "created":
            return _Target(created, path.sub)
        if path.sub.name == "lastModified":
            return _Target(modified, path.sub)
        if path.sub.name == "resourceType":
            return _Target(literal(self.resource.name), path.sub)
        raise InvalidFilter(f"meta.{path.sub.name} cannot be filtered on")

    def leaf_present(self, path: ResolvedPath, raw: str) -> ColumnElement[bool]:
        raise NotImplementedError

    def leaf_compare(self, path: ResolvedPath, op: str, value: Value, raw: str) -> ColumnElement[bool]:
        raise NotImplementedError

    def multi_valued(self, path: ResolvedPath, inner: Expr) -> ColumnElement[bool]:
        raise NotImplementedError


class _ElementCompiler:
    """Compiles the inside of `attr[...]` against one element table."""

    def __init__(self, attribute: Attribute, column_for: Any, binder: _Binder | None) -> None:
        self.attribute = attribute
        self.column_for = column_for
        self.binder = binder

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, (And, Or, Not)):
            return _logical(expr, self.compile)
        if isinstance(expr, ValuePath):
            raise InvalidFilter("value filters cannot be nested")
        name = expr.attr.path
        sub = (
            self.attribute.sub(name.split(".")[-1])
            if "." not in name or name.lower().startswith(self.attribute.name.lower() + ".")
            else None
        )
        if sub is None:
            raise InvalidFilter(f"unknown sub-attribute '{name}' of {self.attribute.name}")
        target = self.column_for(sub)
        if isinstance(expr, Present):
            return present(target)
        return compare(target, expr.op, expr.value, f"{self.attribute.name}.{sub.name}", self.binder)


class UserFilterCompiler(_Compiler):
    resource = USER
    model = User
    columns = USER_COLUMNS
    overrides = USER_FILTER_OVERRIDES

    def column_key(self, path: ResolvedPath) -> str:
        if path.attribute is not None and path.attribute.name == "manager" and path.sub is None:
            return f"{path.key}.value"  # `manager eq <id>` (older Entra documentation)
        return path.key

    def leaf_present(self, path: ResolvedPath, raw: str) -> ColumnElement[bool]:
        assert path.attribute is not None
        if path.attribute.open:
            return self._extension_value(path, present(_EXTENSION_VALUE))
        if path.attribute.multi_valued:
            return self._element_exists(path.attribute, true() if path.sub is None else None, path.sub)
        if path.attribute.type == AttributeType.COMPLEX and path.sub is None and path.attribute.name == "name":
            parts = [getattr(User, c) for k, c in USER_COLUMNS.items() if k.startswith("name.")]
            return or_(*[and_(p.is_not(None), p != "") for p in parts])
        return self._column_present(path, raw)

    def leaf_compare(self, path: ResolvedPath, op: str, value: Value, raw: str) -> ColumnElement[bool]:
        assert path.attribute is not None
        if path.attribute.open:
            return self._extension_value(path, compare(_EXTENSION_VALUE, op, value, raw, self.binder))
        if path.attribute.multi_valued:
            sub = path.sub or path.attribute.sub("value")
            if sub is None:
                raise InvalidFilter(f"'{raw}' needs a sub-attribute")
            return self._element_exists(path.attribute, None, sub, op=op, value=value)
        target = self._column_target(path)
        if target is None:
            raise InvalidFilter(f"'{raw}' is complex; name one of its sub-attributes")
        return compare(target, op, value, path.key, self.binder)

    def multi_valued(self, path: ResolvedPath, inner: Expr) -> ColumnElement[bool]:
        assert path.attribute is not None
        if path.attribute.name == "groups":
            compiler = _ElementCompiler(path.attribute, self._group_element_column, self.binder)
            return self._in_a_group(compiler.compile(inner))
        compiler = _ElementCompiler(path.attribute, self._value_column, self.binder)
        return self._an_element(path.attribute, compiler.compile(inner))

    @staticmethod
    def _in_a_group(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """The user is in a group that meets `condition`; only the groups SCIM sees count, as in the
        rendered `groups` attribute."""
        in_group = select(1).select_from(GroupMembership).join(UserGroup, MEMBERSHIP_GROUP)
        return exists(in_group.where(MEMBERSHIP_USER, visible_to(Channel.SCIM), condition).correlate(User))

    @staticmethod
    def _extension_value(path: ResolvedPath, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """The user has a value of the custom extension attribute that meets `condition`: its index
        rows are named "urn:name", lower-cased (services.extensions.key_of)."""
        assert path.attribute is not None
        named = col(UserAttributeValue.attribute) == extensions.key_of(path.schema, path.attribute.name)
        return exists(select(1).where(INDEX_ROW_USER, named, condition).correlate(User))

    @staticmethod
    def _an_element(attribute: Attribute, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """The user has an element of the multi-valued `attribute` that meets `condition`."""
        return exists(select(1).where(INDEX_ROW_USER, col(UserAttributeValue.attribute) == attribute.name, condition).correlate(User))

    @staticmethod
    def _value_column(sub: Attribute) -> _Target:
        if sub.name == "value":
            return _Target(col(UserAttributeValue.value_ci), sub, prelowered=True)
        if sub.name == "type":
            return _Target(col(UserAttributeValue.type_ci), sub, prelowered=True)
        if sub.name == "primary":
            return _Target(col(UserAttributeValue.is_primary), sub)
        return _Target(col(UserAttributeValue.data)[sub.name].as_string(), sub)

    @staticmethod
    def _group_element_column(sub: Attribute) -> _Target:
        if sub.name == "value":
            return _Target(col(UserGroup.id), Attribute("value", case_exact=True))
        if sub.name == "display":
            return _Target(col(UserGroup.display_name_ci), sub, prelowered=True)
        if sub.name == "type":
            return _Target(literal("direct"), sub)
        raise InvalidFilter(f"groups.{sub.name} cannot be filtered on")

    def _element_exists(
        self, attribute: Attribute, any_element: Any, sub: Attribute | None, *, op: str | None = None, value: Value = None
    ) -> ColumnElement[bool]:
        column = self._group_element_column if attribute.name == "groups" else self._value_column
        condition: ColumnElement[bool] = true()
        if any_element is None:
            assert sub is not None
            target = column(sub)
            condition = present(target) if op is None else compare(target, op, value, f"{attribute.name}.{sub.name}", self.binder)
        return self._in_a_group(condition) if attribute.name == "groups" else self._an_element(attribute, condition)


class GroupFilterCompiler(_Compiler):
    resource = GROUP
    model = UserGroup
    columns = GROUP_COLUMNS
    overrides = GROUP_FILTER_OVERRIDES

    @staticmethod
    def _member_column(sub: Attribute) -> _Target:
        if sub.name == "value":
            return _Target(col(GroupMembership.user_id), Attribute("value", case_exact=True))
        if sub.name == "display":
            return _Target(col(User.display_name), sub)
        if sub.name == "type":
            return _Target(literal("User"), sub)
        raise InvalidFilter(f"members.{sub.name} cannot be filtered on")

    def _members_exist(self, condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
        query = select(1).select_from(GroupMembership).where(MEMBERSHIP_GROUP)
        if condition is not None:
            query = query.join(User, MEMBERSHIP_USER).where(condition)
        return exists(query.correlate(UserGroup))

    def leaf_present(self, path: ResolvedPath, raw: str) -> ColumnElement[bool]:
        assert path.attribute is not None
        if path.attribute.open:
            return present(self._extension_target(path))
        if path.attribute.name == "members":
            return self._members_exist(None if path.sub is None else present(self._member_column(path.sub)))
        return self._column_present(path, raw)

    @staticmethod
    def _extension_target(path: ResolvedPath) -> _Target:
        """A custom extension attribute of a group, read from its JSON (an account has few groups:
        its groups are read by account, then this compared, without an index of its own)."""
        assert path.attribute is not None
        return _Target(col(UserGroup.extensions)[(path.schema, path.attribute.name)].as_string(), Attribute(path.attribute.name))

    def leaf_compare(self, path: ResolvedPath, op: str, value: Value, raw: str) -> ColumnElement[bool]:
        assert path.attribute is not None
        if path.attribute.open:
            return compare(self._extension_target(path), op, value, raw, self.binder)
        if path.attribute.name == "members":
            sub = path.sub or path.attribute.sub("value")
            assert sub is not None
            return self._members_exist(compare(self._member_column(sub), op, value, f"members.{sub.name}", self.binder))
        target = self._column_target(path)
        if target is None:
            raise InvalidFilter(f"'{raw}' cannot be filtered on")
        return compare(target, op, value, path.key, self.binder)

    def multi_valued(self, path: ResolvedPath, inner: Expr) -> ColumnElement[bool]:
        assert path.attribute is not None
        return self._members_exist(_ElementCompiler(path.attribute, self._member_column, self.binder).compile(inner))


COMPILERS: dict[str, type[_Compiler]] = {"User": UserFilterCompiler, "Group": GroupFilterCompiler}


def compile_filter(text: str | None, resource: ResourceType) -> ColumnElement[bool]:
    """The filter as a condition, its values inline."""
    if text is None:
        return true()
    return COMPILERS[resource.name]().compile(parse_filter(text))


class _Binder:
    """Puts the values a compilation compares into bound parameters named by their order, and
    records how each was prepared, so that a filter of the same shape can bind its own values."""

    def __init__(self) -> None:
        self.steps: list[tuple[_Target, str, str]] = []
        self.params: dict[str, Any] = {}

    def bind(self, target: _Target, op: str, name: str, operand: Any) -> Any:
        key = _parameter_name(len(self.steps))
        self.steps.append((target, op, name))
        self.params[key] = operand
        # Untyped, it takes the type of the column it is compared with, as an inline value does (a
        # timestamp then goes through the column type's own conversion); see `_folded` for text.
        return bindparam(key)


def _parameter_name(position: int) -> str:
    return f"filter_{position}"


@dataclass(frozen=True)
class BoundFilter:
    """A filter as a condition whose values are bound parameters (`params`). Filters that differ
    only in their values have the same `shape` and share one `condition`, compiled once, so
    statements built on it can be kept and run with each filter's own parameters."""

    shape: Hashable
    condition: ColumnElement[bool]
    params: dict[str, Any]


_NO_FILTER = BoundFilter(("everything",), true(), {})
# Shapes come from clients: the compiled ones kept are bounded (Entra and Okta use a handful).
_SHAPES: dict[Hashable, tuple[ColumnElement[bool], tuple[tuple[_Target, str, str], ...]]] = {}
_SHAPES_LIMIT = 256


def bind_filter(text: str | None, resource: ResourceType) -> BoundFilter:
    """`compile_filter` with the values bound as parameters, compiled once per shape: a filter of a
    known shape only has its values checked and prepared, as its compilation would."""
    if text is None:
        return _NO_FILTER
    expr = parse_filter(text)
    shape = (resource.name, _shape(expr))
    compiled = _SHAPES.get(shape)
    if compiled is None:
        binder = _Binder()
        condition = COMPILERS[resource.name](binder).compile(expr)
        if len(_SHAPES) < _SHAPES_LIMIT:
            _SHAPES[shape] = (condition, tuple(binder.steps))
        return BoundFilter(shape, condition, binder.params)
    condition, steps = compiled
    # The compiler binds the compared values in the order it meets them: left to right, depth first.
    values = [leaf.value for leaf in _comparisons(expr) if leaf.value is not None]
    params = {
        _parameter_name(position): _operand(target, op, value, name)
        for position, ((target, op, name), value) in enumerate(zip(steps, values, strict=True))
    }
    return BoundFilter(shape, condition, params)


def _shape(expr: Expr) -> Hashable:
    """What the compiled SQL depends on: the filter without its values, except whether each is null."""
    if isinstance(expr, Compare):
        return ("compare", expr.attr.path, expr.op, expr.value is None)
    if isinstance(expr, Present):
        return ("present", expr.attr.path)
    if isinstance(expr, And | Or):
        return (type(expr).__name__, _shape(expr.left), _shape(expr.right))
    if isinstance(expr, Not):
        return ("not", _shape(expr.expr))
    return ("value path", expr.attr.path, _shape(expr.filter))


def _comparisons(expr: Expr) -> Iterator[Compare]:
    if isinstance(expr, Compare):
        yield expr
    elif isinstance(expr, And | Or):
        yield from _comparisons(expr.left)
        yield from _comparisons(expr.right)
    elif isinstance(expr, Not):
        yield from _comparisons(expr.expr)
    elif isinstance(expr, ValuePath):
        yield from _comparisons(expr.filter)


def sort_column(sort_by: str, resource: ResourceType) -> Any:
    """The column behind `sortBy`; a multi-valued attribute sorts by its primary value (emails only)."""
    path = resolve(sort_by, resource)
    if path is None or path.attribute is None:
        raise InvalidInput(f"sortBy names an unknown attribute '{sort_by}'", field="sortBy")
    compiler = COMPILERS[resource.name]
    model: Any = compiler.model
    if path.attribute.name == "id":
        return model.id
    if path.attribute.name == "meta" and path.sub is not None and path.sub.name in ("created", "lastModified"):
        return model.created_at if path.sub.name == "created" else model.updated_at
    if resource is USER and path.attribute.name == "emails" and (path.sub is None or path.sub.name == "value"):
        return col(User.email_ci)
    name = compiler.overrides.get(path.key) or compiler.columns.get(path.key)
    if name is None:
        raise InvalidInput(f"cannot sort by '{sort_by}'", field="sortBy")
    return getattr(model, name)


def sortable_attributes(resource: ResourceType) -> list[str]:
    """The attribute names `sortBy` accepts (in any letter case)."""
    compiler = COMPILERS[resource.name]
    names = ["id", "meta.created", "meta.lastModified", *compiler.columns, *compiler.overrides]
    if resource is USER:
        names += ["emails", "emails.value"]
    return sorted(set(names))


def filterable_text_attributes(resource: ResourceType) -> list[str]:
    """String attributes a filter can compare, for describing filters in the OpenAPI document."""
    if resource is USER:
        names = [k for k, column in USER_COLUMNS.items() if column != "active"] + [
            "id",
            "emails.value",
            "emails.type",
            "phoneNumbers.value",
        ]
    else:
        names = [*GROUP_COLUMNS, "id", "members.value"]
    return sorted(set(names))

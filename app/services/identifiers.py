"""Group identifiers derived from display names, as Harness derives them (step 11 of Harness's page
"Provision Users and Groups using Azure AD (SCIM)"): `example-group` -> `example_group`."""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 128
IDENTIFIER_RE = re.compile(r"^[a-zA-Z_][0-9a-zA-Z_$]{0,127}$")
RESERVED = frozenset(
    "or and eq ne lt gt le ge div mod not null true false new var return step parallel stepGroup org "
    "account class shellScriptProvisioner".split()
)
FALLBACK = "group"


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def derive_identifier(display_name: str) -> str:
    """Trim; `.` and `-` become `_`; accents stripped; leading digits and `$` dropped; anything
    outside `[0-9A-Za-z_$ ]` deleted; whitespace becomes `_`. A name with nothing usable left, or a
    reserved word, gets a usable identifier instead of an error."""
    text = display_name.strip().replace(".", "_").replace("-", "_")
    text = _strip_accents(text)
    text = re.sub(r"[^0-9A-Za-z_$\s]", "", text.lstrip("0123456789$"))
    text = re.sub(r"\s", "_", text.lstrip("0123456789$"))
    text = text[:MAX_LENGTH]
    if not text or not IDENTIFIER_RE.match(text):
        return FALLBACK
    if text in RESERVED:
        return f"{text}_group"
    return text


def with_suffix(base: str, n: int) -> str:
    """`base_n`, shortened so the result stays within the length limit."""
    suffix = f"_{n}"
    return base[: MAX_LENGTH - len(suffix)] + suffix

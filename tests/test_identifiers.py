from __future__ import annotations

import pytest

from app.services.identifiers import IDENTIFIER_RE, derive_identifier, with_suffix

# The vectors Harness's own implementation is tested with.
VECTORS = {
    "example-group": "example_group",
    "example Name": "example_Name",
    ".test": "_test",
    "abc-test": "abc_test",
    " test": "test",
    "$test": "test",
    "test$": "test$",
    "%test": "test",
    "5test": "test",
    "Équipe Café": "Equipe_Cafe",
    "$%^abc.ksxjx_+$++&UII J": "abc_ksxjx_$UII_J",
}


@pytest.mark.parametrize(("name", "expected"), VECTORS.items())
def test_harness_vectors(name: str, expected: str) -> None:
    assert derive_identifier(name) == expected


@pytest.mark.parametrize("name", ["123", "%%%", "   ", "éé-"])
def test_names_with_nothing_usable_still_get_a_valid_identifier(name: str) -> None:
    assert IDENTIFIER_RE.match(derive_identifier(name))


@pytest.mark.parametrize("word", ["or", "class", "account", "true"])
def test_reserved_words_are_avoided(word: str) -> None:
    derived = derive_identifier(word)
    assert derived != word
    assert IDENTIFIER_RE.match(derived)


def test_long_names_are_cut_and_suffixes_fit() -> None:
    derived = derive_identifier("x" * 300)
    assert len(derived) == 128
    assert len(with_suffix(derived, 12)) == 128
    assert with_suffix("example_group", 2) == "example_group_2"

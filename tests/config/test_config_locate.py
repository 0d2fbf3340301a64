"""The key-line locator: every key, header, array-of-tables entry and array element."""

from __future__ import annotations

from typing import Any

import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from palyra.config.locate import KeyLines
from palyra.config.provenance import leaves

TEXT = """\
version = 1
[daemon]
bind = "x"   # comment with [brackets] and key = "value"
[[model_provider.models]]
id = "a"
[[model_provider.models]]
id = "b"
fallbacks = [
  "a",  # first
  'c',
]
breaker = { min_requests = 3, "quoted key" = "v" }
note = \"\"\"
not_a_key = 1
[not_a_header]
\"\"\"
[model_provider.breaker]
window_s = 1.5
[[model_provider.models]]
"dotted.quoted".bare = 2
"""


def test_records_lines_of_keys_headers_and_array_of_tables_entries() -> None:
    lines = KeyLines(TEXT)
    assert lines.exact_line(("version",)) == 1
    assert lines.exact_line(("daemon", "bind")) == 3
    assert lines.exact_line(("model_provider", "models")) == 4
    assert lines.exact_line(("model_provider", "models", 0, "id")) == 5
    assert lines.exact_line(("model_provider", "models", 1)) == 6
    assert lines.exact_line(("model_provider", "models", 1, "id")) == 7
    assert lines.exact_line(("model_provider", "models", 2)) == 19
    assert lines.exact_line(("model_provider", "breaker", "window_s")) == 18
    assert lines.exact_line(("model_provider", "models", 2, "dotted.quoted", "bare")) == 20


def test_records_array_elements_and_inline_table_keys_on_their_own_lines() -> None:
    lines = KeyLines(TEXT)
    fallbacks = ("model_provider", "models", 1, "fallbacks")
    assert lines.exact_line(fallbacks) == 8
    assert lines.exact_line((*fallbacks, 0)) == 9
    assert lines.exact_line((*fallbacks, 1)) == 10
    assert lines.exact_line(("model_provider", "models", 1, "breaker", "quoted key")) == 12


def test_text_inside_multiline_strings_and_comments_is_not_a_key() -> None:
    lines = KeyLines(TEXT)
    assert lines.exact_line(("model_provider", "models", 1, "not_a_key")) is None
    assert lines.exact_line(("not_a_header",)) is None
    assert lines.exact_line(("daemon", "key")) is None


def test_unknown_path_falls_back_to_its_longest_known_prefix() -> None:
    lines = KeyLines(TEXT)
    assert lines.line_of(("model_provider", "models", 1, "nope", 3)) == 6
    assert lines.line_of(("elsewhere",)) is None


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-. ", min_size=1, max_size=6)
_scalars = st.one_of(st.integers(), st.booleans(), st.text(max_size=8), st.floats(allow_nan=False))
_documents = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=3),
    lambda children: st.dictionaries(
        _keys,
        st.one_of(_scalars, children, st.lists(children, min_size=1, max_size=3)),
        max_size=3,
    ),
    max_leaves=12,
)


@given(_documents)
def test_every_leaf_of_a_dumped_document_is_found_on_a_line_naming_its_key(
    document: dict[str, Any],
) -> None:
    text = tomli_w.dumps(document)
    lines = KeyLines(text)
    source = text.split("\n")
    for path, _ in leaves(document):
        if not path:
            continue
        line = lines.exact_line(path)
        assert line is not None, (path, text)
        if isinstance(path[-1], str):
            assert path[-1] in source[line - 1], (path, text)

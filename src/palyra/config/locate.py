"""Find the line where a key path is written in TOML text, so schema errors can point at it.

``tomllib`` throws positions away; this scanner walks the (already valid) text once and records
the first line of every table header, key and array element it sees, with array-of-tables
entries numbered the way the parsed document numbers them.
"""

from __future__ import annotations

import bisect

from palyra.config.problems import KeyPath

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


class KeyLines:
    """Line numbers (1-based) of key paths in one TOML document."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._aot_counts: dict[KeyPath, int] = {}
        self._scan()

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its longest recorded prefix, else ``None``."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def exact_line(self, path: KeyPath) -> int | None:
        return self._lines.get(path)

    # -- scanning -------------------------------------------------------------------------

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _record(self, path: KeyPath, pos: int) -> None:
        self._lines.setdefault(path, self._line_at(pos))

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip_ws(self) -> None:
        text = self._text
        while self._pos < len(text) and text[self._pos] in " \t":
            self._pos += 1

    def _skip_blank(self) -> None:
        """Skip whitespace, newlines and comments."""
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch in " \t\r\n":
                self._pos += 1
            elif ch == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        table: KeyPath = ()
        text = self._text
        while True:
            self._skip_blank()
            if self._pos >= len(text):
                return
            start = self._pos
            if self._peek(2) == "[[":
                self._pos += 2
                keys = self._key()
                self._skip_ws()
                self._pos += 2
                base = (*self._resolve(keys[:-1]), keys[-1])
                index = self._aot_counts.get(base, 0)
                self._aot_counts[base] = index + 1
                table = (*base, index)
                self._record(base, start)
                self._record(table, start)
            elif self._peek() == "[":
                self._pos += 1
                table = self._resolve(self._key())
                self._skip_ws()
                self._pos += 1
                self._record(table, start)
            else:
                keys = self._key()
                self._skip_ws()
                if not keys or self._peek() != "=":
                    self._skip_line()
                    continue
                self._pos += 1
                path = (*table, *keys)
                self._record(path, start)
                self._skip_ws()
                self._value(path)

    def _skip_line(self) -> None:
        end = self._text.find("\n", self._pos)
        self._pos = len(self._text) if end < 0 else end + 1

    def _resolve(self, keys: tuple[str, ...]) -> KeyPath:
        """A header path, with each array-of-tables prefix pointing at its latest entry."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            count = self._aot_counts.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        text = self._text
        while True:
            self._skip_ws()
            ch = self._peek()
            if ch in ('"', "'"):
                parts.append(self._string())
            else:
                start = self._pos
                while self._pos < len(text) and text[self._pos] in _BARE_KEY_CHARS:
                    self._pos += 1
                if self._pos == start:
                    return tuple(parts)
                parts.append(text[start : self._pos])
            self._skip_ws()
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _string(self) -> str:
        """Consume a string of any of the four kinds; return its (lightly unescaped) body."""
        text = self._text
        quote = text[self._pos]
        triple = self._peek(3) == quote * 3
        delim = quote * 3 if triple else quote
        self._pos += len(delim)
        chars: list[str] = []
        while self._pos < len(text):
            if text.startswith(delim, self._pos):
                self._pos += len(delim)
                # A triple-quoted string may end with up to two extra quote characters.
                while triple and self._peek() == quote:
                    chars.append(quote)
                    self._pos += 1
                return "".join(chars)
            ch = text[self._pos]
            if ch == "\\" and quote == '"':
                chars.append(text[self._pos + 1 : self._pos + 2])
                self._pos += 2
                continue
            chars.append(ch)
            self._pos += 1
        return "".join(chars)

    def _value(self, path: KeyPath) -> None:
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self._array(path)
        elif ch == "{":
            self._inline_table(path)
        else:
            text = self._text
            start = self._pos
            while self._pos < len(text) and text[self._pos] not in _SCALAR_END:
                self._pos += 1
            if self._pos == start and self._pos < len(text):
                self._pos += 1

    def _array(self, path: KeyPath) -> None:
        self._pos += 1
        index = 0
        while self._pos < len(self._text):
            self._skip_blank()
            if self._peek() == "]":
                self._pos += 1
                return
            self._record((*path, index), self._pos)
            self._value((*path, index))
            index += 1
            self._skip_blank()
            if self._peek() == ",":
                self._pos += 1

    def _inline_table(self, path: KeyPath) -> None:
        self._pos += 1
        while self._pos < len(self._text):
            self._skip_blank()
            if self._peek() == "}":
                self._pos += 1
                return
            start = self._pos
            keys = self._key()
            self._skip_ws()
            if not keys or self._peek() != "=":
                self._pos += 1
                continue
            self._pos += 1
            self._record((*path, *keys), start)
            self._skip_ws()
            self._value((*path, *keys))
            self._skip_blank()
            if self._peek() == ",":
                self._pos += 1

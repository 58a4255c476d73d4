"""YAML that remembers where each key is, so an error can name the file, the line and the field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

Location = tuple[str | int, ...]


class SpecError(ValueError):
    """A dataset spec file that cannot be used; each line of the message is `file:line: field: problem`."""


class LinedYaml:
    """A YAML document's data and the line of every key and list item in it."""

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text(encoding="utf-8")
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark else 1
            raise SpecError(f"{path}:{line}: not valid YAML: {err.problem or err.context}") from None
        self.lines: dict[Location, int] = {}
        if node is not None:
            self._index(node, ())

    def _index(self, node: yaml.Node, at: Location) -> None:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[(*at, str(key.value))] = key.start_mark.line + 1
                self._index(value, (*at, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._index(item, (*at, index))

    def locate(self, loc: Sequence[str | int], missing: bool = False) -> tuple[int, str]:
        """The line and the dotted field of a validation error's `loc`. Parts of `loc` that are not
        in the file (a union's tag, say) are skipped; a missing field is named at its parent's line."""
        at: Location = ()
        for part in loc:
            key = part if isinstance(part, int) else str(part)
            if (*at, key) in self.lines:
                at = (*at, key)
        names = [*map(str, at), *([str(loc[-1])] if missing and loc else [])]
        return self.lines.get(at, 1), ".".join(names) or "(top level)"

    def error(self, loc: Sequence[str | int], problem: str, missing: bool = False) -> str:
        line, field = self.locate(loc, missing)
        return f"{self.path}:{line}: {field}: {problem}"

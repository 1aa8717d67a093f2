"""The column layout both text synthesizers (``dptext``, ``dptext-pp``) share: exactly one
text column, plus categorical control columns."""

from __future__ import annotations

from typing import Any, ClassVar

from dpsynth.errors import ParameterError
from dpsynth.schema import CATEGORY_KINDS, Schema


class OneTextColumn:
    """Mixin: the schema's one text column, its controls and the record length in tokens."""

    default_max_length: ClassVar[int]
    max_length: Any
    verb: ClassVar[str] = "models"

    def _check_one_text_column(self, schema: Schema) -> None:
        texts = [c.name for c in schema.data_columns if c.kind == "text"]
        if len(texts) != 1:
            raise ParameterError(f"{type(self).__name__} {self.verb} exactly one text column "
                                 f"plus categorical control columns; the schema has text "
                                 f"columns {texts}.")

    def _columns(self, schema: Schema) -> tuple[str, list[str]]:
        text = next(c.name for c in schema.data_columns if c.kind == "text")
        controls = [c.name for c in schema.data_columns if c.kind in CATEGORY_KINDS]
        return text, controls

    def _text_length(self, schema: Schema) -> int:
        if self.max_length is not None:
            return int(self.max_length)
        text, _ = self._columns(schema)
        return int(schema[text].max_length or self.default_max_length)

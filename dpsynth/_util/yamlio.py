"""YAML for hand-written files (schemas): booleans as in YAML 1.2, so ``no`` stays a string."""

from __future__ import annotations

import re
from typing import Any

import yaml

#: YAML 1.1 words for booleans, read as strings by the loader here; accepted as booleans for
#: the flag fields only (``nullable``, ``public``).
YAML11_BOOLS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False,
                 "true": True, "false": False}


class _Yaml12BoolLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only ``true``/``false`` are booleans.

    Under YAML 1.1 an unquoted category list ``[no, yes]`` loads as ``[False, True]``, which
    validates against nothing the user wrote and writes ``True``/``False`` into synthetic data;
    here category levels are read as the strings written.
    """


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str) -> Any:
    """Parse ``text`` with YAML 1.2 booleans (``true``/``false`` only); no custom tags."""
    return yaml.load(text, Loader=_Yaml12BoolLoader)  # noqa: S506  (a SafeLoader subclass)


__all__ = ["YAML11_BOOLS", "load_yaml"]

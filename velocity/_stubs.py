"""Type stubs for the registry-generated classes, so type checkers and editors see them.

``velocity.strategies`` and ``velocity.attacks`` build their classes from the Rust registry at
import time; a static type checker cannot run that, so ``strategies.pyi`` and ``attacks.pyi``
spell them out. They are written from the registry by ``python -m velocity._stubs`` (``make
stubs``), and ``tests/test_api.py`` checks they are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from velocity.registry import ComponentInfo, ParamInfo, list_attacks, list_strategies
from velocity.specs import _class_name, _docstring

HEADER = "# Written by `python -m velocity._stubs` from the registry (vfl-rs/src/registry.rs); do not edit.\n"
_TYPES = {"int": "int", "float": "float", "bool": "bool"}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def _annotation(p: ParamInfo) -> str:
    return f"Literal[{', '.join(repr(c) for c in p.choices)}]" if p.type == "choice" else _TYPES[p.type]


def _class(info: ComponentInfo) -> str:
    args = []
    for p in info.params:
        if p.required:
            args.append(f"{p.name}: {_annotation(p)}")
        elif p.derived:
            args.append(f"{p.name}: {_annotation(p)} | None = None")
        else:
            args.append(f"{p.name}: {_annotation(p)} = ...")
    signature = f"self, *, {', '.join(args)}" if args else "self"
    doc = _indent('"""' + _docstring(info).replace("\\", "\\\\") + '\n"""', "    ")
    return f"class {_class_name(info.name)}(Component):\n{doc}\n\n    info: ComponentInfo\n    def __init__({signature}) -> None: ...\n"


def stub(module: str) -> str:
    """The text of ``velocity/<module>.pyi`` for ``"strategies"`` or ``"attacks"``."""
    if module == "strategies":
        infos, imports = list_strategies(), ["Component", "StrategySpec", "parse_strategy"]
    elif module == "attacks":
        infos, imports = list_attacks(), ["AttackSpec", "Component", "parse_attack", "parse_attacks"]
    else:
        raise ValueError(f"Expected 'strategies' or 'attacks', got {module!r}")
    names = [*imports, *(_class_name(i.name) for i in infos)]
    uses_literal = any(p.type == "choice" for i in infos for p in i.params)
    head = [
        HEADER,
        *(["from typing import Literal", ""] if uses_literal else []),
        "from velocity.registry import ComponentInfo",
        f"from velocity.specs import {', '.join(imports)}",
        "",
        "__all__ = [" + ", ".join(f'"{n}"' for n in names) + "]",
        "",
    ]
    return "\n".join(head) + "\n" + "\n\n".join(_class(i) for i in infos)


def stub_path(module: str) -> Path:
    return Path(__file__).with_name(f"{module}.pyi")


def main() -> int:
    for module in ("strategies", "attacks"):
        stub_path(module).write_text(stub(module), encoding="utf-8")
        print(f"wrote {stub_path(module)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

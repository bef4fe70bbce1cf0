"""The engine's layers, checked from source: which llmrl_core package may import which.

    core  <-  lm  <-  runs  <-  features (lm_rl, gym, agent, attention)  <-  present
              (runs does not import lm: the run machinery needs no model)

Every import is read with ast from every module, deferred imports inside functions and TYPE_CHECKING
blocks included (a deferred arrow is still an arrow). The top-level modules (cli.py, __main__.py,
__init__.py) are the composition root and may import anything. ALLOWED lists the few arrows that cross
a layer on purpose, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

FEATURES = ("lm_rl", "gym", "agent", "attention")
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},
    "lm": {"core", "lm"},
    "runs": {"core", "runs"},
    **{feature: {"core", "lm", "runs", feature} for feature in FEATURES},
    "present": {"core", "lm", "runs", "present", *FEATURES},
}
ALLOWED: dict[tuple[str, str], str] = {
    # (importing package or module, imported package or module): why the arrow crosses a layer
    ("llmrl_core.agent", "llmrl_core.lm_rl.algorithms"):
        "the LM agent trains with LM RL's own PPO value head and clipped/REINFORCE losses (one copy of the math)",
}


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in a module's tree, relative ones resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            if target.count(".") < 1:  # `from llmrl_core import runs`: the names are the packages
                found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def find_layer_violations(root: Path, package: str = "llmrl_core",
                          allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Every import in the package at `root` (the folder holding `package`) that points up or sideways, and
    every `allowed` arrow (default ALLOWED) that no import uses any more (the list stays short)."""
    allowed = ALLOWED if allowed is None else allowed
    used: set[tuple[str, str]] = set()
    violations = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        module = ".".join(parts)
        if len(parts) < 3 and not (is_package and len(parts) == 2):
            continue  # a top-level module: the composition root
        layer = parts[1]
        allowed_layers = MAY_IMPORT.get(layer)
        if allowed_layers is None:
            violations.append(f"{path}: package {layer!r} has no layer; add it to MAY_IMPORT")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target, line in _imported_names(tree, module, is_package):
            target_parts = target.split(".")
            if target_parts[0] != package:
                continue
            if len(target_parts) == 1 or target_parts[1] in ("cli", "__main__"):
                violations.append(f"{module}:{line} imports the composition root {target}")
                continue
            if target_parts[1] in allowed_layers or not (root / package / target_parts[1]).is_dir():
                continue
            exempt = [(src, dst) for src, dst in allowed if _within(module, src) and _within(target, dst)]
            if exempt:
                used.update(exempt)
                continue
            violations.append(f"{module}:{line} ({layer}) imports {target} ({target_parts[1]})")
    violations += [f"ALLOWED arrow {src} -> {dst} is no longer used: remove it" for src, dst in allowed
                   if (src, dst) not in used]
    return sorted(set(violations))


def _within(name: str, prefix: str) -> bool:
    """True when module `name` is `prefix` or inside it."""
    return name == prefix or name.startswith(prefix + ".")

"""The domain types' constants."""

from __future__ import annotations

from pathlib import Path


def test_the_known_event_kinds_are_the_ones_retrainer_emits():
    import ast

    import retrainer
    from retrainer.core.types import EVENT_KINDS

    families = {k.split(".")[0] for k in EVENT_KINDS}
    emitted = set()
    for path in Path(retrainer.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                family, _, rest = node.value.partition(".")
                if family in families and rest.replace("_", "").isalpha():
                    emitted.add(node.value)
    assert emitted <= set(EVENT_KINDS), sorted(emitted - set(EVENT_KINDS))
    assert list(EVENT_KINDS) == sorted(EVENT_KINDS)

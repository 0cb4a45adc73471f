#!/usr/bin/env python3
"""Checks that no module of src/ imports a layer below its own (src/lib.rs
lists the layers).  Prints each offending import and exits 1, or prints
"layers: ok".

    python3 scripts/check-layers.py
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# Lower number: lower layer.  A module of citus/ sits with the layer that uses it.
LAYERS = {
    "base": 0, "citus::nodes": 0,
    "catalog": 1, "citus": 1,
    "context": 2, "citus::schemas": 2,
    "observability": 2.5,  # above context, below isolation: nothing imports it
    "isolation": 3,
    "lifecycle": 4,
    "operations": 5,
    "integrations": 6,
    "citus::setup": 7, "citus::routing": 7,
    "guard": 8,
    "tests": 9,
}


def layer(path):
    for key in sorted(LAYERS, key=len, reverse=True):
        if path == key or path.startswith(key + "::"):
            return key
    return None


def module_of(file):
    rel = file.relative_to(SRC).with_suffix("")
    return re.sub(r"::mod$", "", "::".join(rel.parts))


def main():
    bad = []
    for file in sorted(SRC.rglob("*.rs")):
        own = layer(module_of(file))
        if own is None:
            continue
        for n, line in enumerate(file.read_text().split("\n"), 1):
            for m in re.finditer(r"crate::([a-z_]+(?:::[a-z_]+)?)", line):
                target = layer(m.group(1))
                if target and LAYERS[target] > LAYERS[own]:
                    bad.append(f"{file.relative_to(SRC.parent)}:{n}: {own} imports {m.group(1)} ({target}, a layer above it)")
    for b in bad:
        print(b)
    print("layers: ok" if not bad else f"layers: {len(bad)} imports against the layering")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# docs/scale-out.md, every example as written, on the cluster (the docs part
# of scripts/test.sh skips it: it needs Citus and its workers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DOCTEST_DATABASE=$PGDATABASE python3 "$here/../docs/run.py" "$here/../../docs/scale-out.md"

# Sourced by scripts/test and scripts/demo: create or reuse .venv and install fedseg into it.
# torch is pinned to a tested CPU-friendly release *before* the package, because an unpinned torch
# pulls a CUDA build of several GB; pyproject.toml itself keeps a range.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${FEDSEG_EXTRAS:-}"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV" >&2
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "installing torch==2.13.* (CPU build where the index offers one)" >&2
  "$PY" -m pip install --quiet "torch==2.13.*"
fi
stamp="$VENV/.fedseg-install-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/constraints.txt" | sha256sum | cut -c1-16)-$EXTRAS"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! "$PY" -c "import fedseg" >/dev/null 2>&1; then
  echo "installing fedseg${EXTRAS:+[$EXTRAS]} into $VENV" >&2
  # the tested versions (scripts/constraints.txt): no resolver backtracking, the same set CI tested
  "$PY" -m pip install --quiet -c "$ROOT/scripts/constraints.txt" -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  echo "$want" > "$stamp"
fi

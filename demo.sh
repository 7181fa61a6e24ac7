#!/usr/bin/env bash
# Install pomerium_jupyter, start the Pomerium test server on loopback and open
# the quickstart notebook in JupyterLab. Stop both with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")"

python -m pip install -q -e ".[test]"

# The quickstart notebook expects the "app" route on port 8443.
port_base="${POMERIUM_TEST_PORT_BASE:-8442}"
python -m pomerium_jupyter.testing --port-base "$port_base" &
pomerium_pid=$!
trap 'kill "$pomerium_pid" 2>/dev/null || true' EXIT
export POMERIUM_TEST_ROUTE="http://127.0.0.1:$((port_base + 1))"

# localhost keeps the callback on loopback, which Pomerium's default allow list
# accepts. Sign in as alice / alice-password.
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-root)
jupyter lab --ServerApp.ip=localhost "${extra[@]}" notebooks/quickstart.ipynb "$@"

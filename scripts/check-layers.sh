#!/usr/bin/env bash
# Fails (exit 1, printing file:line and the rule) on any upward import in the server library:
# http -> services -> admission -> store -> domain, workers -> services/admission/store, leaves
# (config, metrics, telemetry, auth) anyone may use; store/redis never imports store/pg; no
# library module imports the tools; only config reads the environment. See
# scripts/check_layers.py for how paths are resolved (multi-line `use crate::{..}` groups too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 scripts/check_layers.py src

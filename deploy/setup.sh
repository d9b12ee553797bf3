#!/usr/bin/env bash
# Installs everything the platform needs into .venv/ of this clone, from the package
# registries only (PyPI for Python packages, Maven Central for the Kafka broker jars).
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: Python >= 3.11 is needed (found $("$PYTHON" --version))" >&2; exit 1; }
# The simulator's two C modules (producers/sim/_fleetstep.c, producers/publish/_framewire.c)
# are optional speed-ups with pure-Python twins: without a compiler they are skipped, with
# a warning. VDP_BUILD_C=strict (CI) demands them, built with -Werror (see setup.py).
c_missing() {
  if [ "${VDP_BUILD_C:-auto}" = strict ]; then
    echo "setup: VDP_BUILD_C=strict: $1 is needed to build the C modules" >&2
    exit 1
  fi
  echo "setup: warning: no $1: the simulator's C modules are skipped and their pure-Python twins run (same output, several times slower)" >&2
}
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || c_missing "C compiler (cc or gcc)"
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || c_missing "Python headers (Python.h)"
command -v java >/dev/null 2>&1 || { echo "setup: a JDK (17+) is needed for the Kafka broker" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "setup: Maven is needed to resolve the Kafka jars" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "setup: Node.js with npm is needed to fetch the owner portal's chart library and Swagger UI" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing Python packages into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -c 'import producers.sim._fleetstep, producers.publish._framewire' 2>/dev/null \
  || echo "setup: warning: the C modules did not build (pip install -v -e . shows why); the pure-Python twins run" >&2
echo "setup: fetching the owner portal's browser assets (uPlot, Swagger UI) from the npm registry"
.venv/bin/python -m query.portal.assets
# The browser tests (tests/e2e/test_portal.py) drive Debian's Chromium through Playwright;
# Playwright's own browser downloads are never used.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: warning: no chromium and no root to install it (apt-get install chromium): the browser tests are skipped (under CI they fail)" >&2
  fi
fi
echo "setup: resolving the Kafka broker jars from Maven Central"
.venv/bin/vdp stack fetch
echo "setup: done; the entry point is .venv/bin/vdp"

#!/bin/sh
# The README's test command (`npm run test:all`) and what CI runs: installs everything the tests
# need on a fresh Debian machine (npm packages; Chromium from Debian, never a downloaded browser),
# then type-checks, builds, checks the package and the size budget, and runs every suite.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

npm run typecheck
npm run build
npm run size
npm run lint:package
npm test

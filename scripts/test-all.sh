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

# npm install, not npm ci: it keeps the lock file's versions, and npm ci refuses a lock written
# where npm omits other platforms' optional packages (rollup's native binaries).
npm install --no-audit --no-fund

npm run typecheck
npm run build
npm run size
npm run lint:package
npm test

#!/bin/sh
# The README's test command (`npm run test:all`) and what CI runs: installs everything the tests
# need on a fresh Debian machine (npm packages; Chromium from Debian, never a downloaded browser;
# nginx and squid from Debian for test/browser/nginx.test.ts and test/browser/squid.test.ts, which
# start their own nginx and squid processes: the system services are never started), then
# type-checks, builds, checks the package and the size budget, and runs every suite.
set -eu
cd "$(dirname "$0")/.."

MISSING=""
[ -x /usr/bin/chromium ] || MISSING="$MISSING chromium"
[ -x /usr/sbin/nginx ] || MISSING="$MISSING nginx"
[ -x /usr/sbin/squid ] || MISSING="$MISSING squid"
if [ -n "$MISSING" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  # Install without starting any system service (nginx's postinst would start the system nginx
  # on port 80, squid's the system squid on port 3128): Debian's policy-rc.d hook answering 101
  # ("action forbidden"), for the install only.
  NOSTART=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    NOSTART=1
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $MISSING
  if [ -n "$NOSTART" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
fi

# npm install, not npm ci: it keeps the lock file's versions, and npm ci refuses a lock written
# where npm omits other platforms' optional packages (rollup's native binaries).
npm install --no-audit --no-fund

npm run typecheck
npm run build
npm run size
npm run lint:package
npm test

#!/usr/bin/env bash
# Installs the system packages the tests need, when missing: real servers
# for the Git transports (lighttpd with TLS for smart HTTP(S), openssh-server
# for SSH), the clients tests drive (git, gpg, ssh-keygen, openssl) and
# Chromium and Firefox for the web UI's browser tests; then playwright-core
# and puppeteer-core from npm into ui-tests/.
# Debian's packages, as root (CI runs as root); otherwise it says what to
# install.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
command -v gpg >/dev/null || need+=(gnupg)
command -v ssh >/dev/null || need+=(openssh-client)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
[[ -x /usr/sbin/lighttpd ]] || need+=(lighttpd)
[[ -e /usr/lib/lighttpd/mod_openssl.so ]] || need+=(lighttpd-mod-openssl)
command -v openssl >/dev/null || need+=(openssl)
# The web UI's tests drive a real browser.
[[ -x /usr/bin/chromium ]] || need+=(chromium)
[[ -x /usr/bin/firefox-esr ]] || need+=(firefox-esr)

npm_deps() {
  local modules
  modules="$(dirname "${BASH_SOURCE[0]}")/../ui-tests/node_modules"
  if [[ ! -d "$modules/playwright-core" || ! -d "$modules/puppeteer-core" ]]; then
    echo "==> installing playwright-core and puppeteer-core (npm ci in ui-tests/)" >&2
    (cd "$(dirname "${BASH_SOURCE[0]}")/../ui-tests" && npm ci --no-audit --no-fund --silent)
  fi
}

if (( ${#need[@]} == 0 )); then
  echo "==> system packages: all present" >&2
  npm_deps
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing system packages: ${need[*]}; install them (apt-get install ${need[*]}) and run again" >&2
  exit 1
fi
echo "==> installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' services from starting: tests start their
# own servers on loopback ports.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
npm_deps

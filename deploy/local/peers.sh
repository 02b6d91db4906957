#!/usr/bin/env bash
# Install the real peers Firebreak is tested against: Prometheus and Alertmanager from Debian's packages.
#   deploy/local/peers.sh install    install prometheus and prometheus-alertmanager if missing (no services started)
#   deploy/local/peers.sh check      print their versions; exit 3 if one is missing
set -euo pipefail

have() { command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null; }

case "${1:-}" in
  install)
    if have; then exit 0; fi
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "[peers] installing Debian's prometheus and prometheus-alertmanager" >&2
    # The packages' services are not wanted here (tests run their own on free ports): while installing, a
    # policy-rc.d that says no keeps dpkg from starting them, unless the machine already has one.
    export DEBIAN_FRONTEND=noninteractive
    ours=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
      ours=1
    fi
    trap '[ -n "$ours" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null
    have || { echo "[peers] prometheus/alertmanager still missing after apt-get install" >&2; exit 1; }
    ;;
  check)
    have || exit 3
    prometheus --version 2>&1 | head -1
    prometheus-alertmanager --version 2>&1 | head -1
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Set up everything chot needs on a Debian machine: system packages, a virtual environment,
# and the project with its test extras. Safe to run again; it skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql, nginx and nats-server: the national central (its store; the proxy in front of
# several web processes; the clustered broker); the tests start throwaway ones of each.
apt_packages=(mosquitto mosquitto-clients nats-server libzbar0 chromium shellcheck systemd openssl postgresql nginx)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The system broker must not hold port 1883 for nothing: chot starts its own brokers.
# Likewise the system nats-server, PostgreSQL (port 5432) and nginx: tests and benches run their own.
for service in mosquitto nats-server postgresql nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" 2>/dev/null || true
  fi
done

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  if ! "$python" -m venv .venv 2>/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv .venv
  fi
fi
stamp=.venv/.chot-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing chot and its dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

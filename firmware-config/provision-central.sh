#!/usr/bin/env bash
# Turn a Debian server into the chot central: broker, ingest and dashboard as systemd services.
# Safe to run again: every step first looks whether it is already done. See --help.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=provision-lib.sh source-path=SCRIPTDIR
. "$here/provision-lib.sh"

usage() {
  cat <<'EOF'
Usage: provision-central.sh [options]

Installs Mosquitto and chot (in a venv), creates the service user, writes
/etc/chot/central.toml from the template, makes the service secrets once (web session key,
/metrics token, ingest and dashboard broker passwords: 0600 systemd credentials in
/etc/chot/credentials), renders the broker's config, password file and ACL (chot dashboard
init), and enables chot-broker, chot-ingest and chot-dashboard. Debian's own mosquitto.service is stopped and disabled.

Options:
  --anchor FILE        the ministry trust-list public key (PEM); uploaded bundles must be signed by it
  --tls-cert FILE      broker certificate (PEM) for the units' TLS listener on port 8883
  --tls-key FILE       its private key
  --no-tls-listener    loopback listener only (units on this machine, or a TLS proxy in front)
  --source DIR         chot source tree to install (default: the one holding this script)
  --prefix DIR         install files under DIR (an image being built, or a test); commands that
                       act on the running system (apt, useradd, pip, systemctl) are listed and skipped
  --dry-run            print every step it would take and change nothing
  -h, --help           this help

Then, with the installed /usr/local/sbin/chot-central (chot dashboard as the service user):
  sudo chot-central create-user admin --role admin
  sudo chot-central add-device unit-ic7-01 --checkpoint IC7 --district 001 --province 01
                                              (prints the unit's MQTT password once)
EOF
}

anchor="" tls_cert="" tls_key="" tls_listener=1 source_dir=$(dirname "$here") prefix="" dry_run=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --anchor) need_arg "$@"; anchor=$2; shift 2 ;;
    --tls-cert) need_arg "$@"; tls_cert=$2; shift 2 ;;
    --tls-key) need_arg "$@"; tls_key=$2; shift 2 ;;
    --no-tls-listener) tls_listener=0; shift ;;
    *) common_option "$@"; shift "$shift_by" ;;
  esac
done

etc=$prefix/etc/chot
config=$etc/central.toml
cred_dir=$etc/credentials
data_dir=$prefix/var/lib/chot-dashboard
opt=$prefix/opt/chot
venv=$opt/venv
systemd_dir=$prefix/etc/systemd
python=${CHOT_PYTHON:-$venv/bin/python}

if [ ! -f "$source_dir/pyproject.toml" ] || [ ! -d "$source_dir/dashboard" ]; then
  die "--source $source_dir is not a chot source tree"
fi
fw=$source_dir/firmware-config
for f in "$anchor" "$tls_cert" "$tls_key"; do
  [ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done
if { [ -n "$tls_cert" ] && [ -z "$tls_key" ]; } || { [ -z "$tls_cert" ] && [ -n "$tls_key" ]; }; then
  die "--tls-cert and --tls-key go together"
fi
need_root

# --- 1. packages, user, chot -----------------------------------------------------------------
install_packages mosquitto python3-venv python3-pip
ensure_user chot /var/lib/chot-dashboard
install_chot --upgrade-deps

# --- 2. folders, anchor, broker certificate -----------------------------------------------------
make_dir "$etc" 0755
make_dir "$cred_dir" 0700
make_dir "$data_dir" 0750
[ -z "$anchor" ] || put "$anchor" "$etc/trust-anchor.pem" 0644
if [ -n "$tls_cert" ]; then
  put "$tls_cert" "$etc/tls/broker.crt" 0644
  put "$tls_key" "$etc/tls/broker.key" 0640
fi

# --- 3. secrets, made once and then kept -------------------------------------------------------
new_secret() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }
for name in dashboard-secret-key dashboard-metrics-token ingest-mqtt-password dashboard-mqtt-password; do
  if [ -s "$cred_dir/$name" ]; then
    done_already "$cred_dir/$name"
  else
    step "make a random secret $cred_dir/$name (mode 0600)" write_secret "$cred_dir/$name" "$(new_secret)"
  fi
done

# --- 4. central config (local edits kept) ------------------------------------------------------
render_config() {
  if [ -f "$config" ]; then cp "$config" "$1"; else cp "$fw/central.toml" "$1"; fi
  [ -n "$anchor" ] || [ -f "$etc/trust-anchor.pem" ] || comment_key "$1" "" anchor_file
  if [ "$tls_listener" -eq 0 ]; then
    comment_key "$1" broker tls_port
  elif [ -z "$tls_cert" ] && [ ! -f "$etc/tls/broker.crt" ]; then
    say "note   no --tls-cert: the units' TLS listener stays off until one is given"
    comment_key "$1" broker tls_port
  else
    set_key "$1" broker tls_port 8883
  fi
}
install_config dashboard.config load_config 0644

# --- 5. broker files: config, service accounts, ACL --------------------------------------------
init_central() {
  CHOT_DASHBOARD_CONFIG=/etc/chot/central.toml CREDENTIALS_DIRECTORY=/etc/chot/credentials \
    "$venv/bin/chot" dashboard init
  chown -R chot:chot /var/lib/chot-dashboard
  chown root:chot /etc/chot/tls/broker.key 2>/dev/null || true
}
system "render the broker config, service accounts and ACL (chot dashboard init)" init_central

# --- 6. services ---------------------------------------------------------------------------------
# chot-ingest@.service is installed, not started: with ingest.workers = N and a PostgreSQL store,
# run chot-ingest@1 ... chot-ingest@N instead of chot-ingest.service.
for unit in chot-broker.service chot-ingest.service chot-ingest@.service chot-dashboard.service chot-rosters.service chot-rosters.timer; do
  put "$fw/systemd/$unit" "$systemd_dir/system/$unit" 0644
done
put "$fw/systemd/journald-central.conf" "$systemd_dir/journald.conf.d/chot.conf" 0644
put "$fw/chot-central" "$prefix/usr/local/sbin/chot-central" 0755
if [ -z "$prefix" ] && systemctl is-enabled --quiet mosquitto.service 2>/dev/null; then
  system "stop and disable Debian's mosquitto.service (chot-broker replaces it)" \
    systemctl disable --now mosquitto.service
fi
start_services chot-broker.service chot-ingest.service chot-dashboard.service chot-rosters.timer
finish "central provisioned; next: sudo chot-central create-user NAME --role admin, then sudo chot-central add-device ..."

#!/usr/bin/env bash
# Turn a Raspberry Pi OS (Bookworm) board with a camera into a chot checkpoint unit.
# Safe to run again: every step first looks whether it is already done. See --help.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=provision-lib.sh source-path=SCRIPTDIR
. "$here/provision-lib.sh"

usage() {
  cat <<'EOF'
Usage: provision.sh [options]

Installs the system packages (python3-picamera2 and libcamera from the OS, libzbar0,
mosquitto-clients, cage and chromium for the officer screen), installs chot into a venv that
sees the OS's Python packages, creates the service users, enrols the unit (pins the ministry
trust anchor, installs the first trust bundle, stores the MQTT password as a systemd
credential, writes checkpoint and policy into /etc/chot/unit.toml) and enables the services.

Enrolment (register the unit on the central first: chot dashboard add-device ...):
  --device-id ID          device id = MQTT username (required on first enrolment)
  --checkpoint ID         checkpoint id the unit reports under (required on first enrolment)
  --policy NAME           policy name from the trust bundle (default: vn-2021)
  --broker-host HOST      central broker host name (required on first enrolment)
  --broker-port PORT      broker port (default: 8883, or 1883 with --no-tls)
  --no-tls                plain MQTT (only on a private network)
  --ca-file FILE          CA certificate (PEM) of the broker; default: the system's CAs
  --password-file FILE    file holding the unit's MQTT password (or set CHOT_MQTT_PASSWORD);
                          kept as a 0600 systemd credential, never in the config file
  --anchor FILE           the ministry trust-list public key (PEM) to pin
  --replace-anchor        allow replacing an already pinned, different anchor
  --bundle FILE           the first signed trust bundle (JSON)
Hardware:
  --no-kiosk              no screen: do not install or enable the kiosk
  --no-gpio               no LEDs, buzzer or relay wired
  --read-only-root        overlay root file system; needs --data-device
  --data-device DEV       partition for /var/lib/chot (e.g. LABEL=chot-data, /dev/mmcblk0p3)
Installation:
  --source DIR            chot source tree to install (default: the one holding this script)
  --prefix DIR            install files under DIR (an image being built, or a test); commands
                          that act on the running system (apt, useradd, pip, systemctl, chown)
                          are listed and skipped
  --dry-run               print every step it would take and change nothing
  -h, --help              this help

Environment: CHOT_PYTHON, a Python with chot importable, used to check the bundle and the
config (default: the unit's venv).
EOF
}


# --- options -----------------------------------------------------------------------------
device_id="" checkpoint="" policy="" broker_host="" broker_port="" tls=1 ca_file=""
password_file="" anchor="" replace_anchor=0 bundle="" kiosk=1 gpio=1 read_only_root=0
data_device="" source_dir=$(dirname "$here") prefix="" dry_run=0

while [ "$#" -gt 0 ]; do
  case "$1" in
    --device-id) need_arg "$@"; device_id=$2; shift 2 ;;
    --checkpoint) need_arg "$@"; checkpoint=$2; shift 2 ;;
    --policy) need_arg "$@"; policy=$2; shift 2 ;;
    --broker-host) need_arg "$@"; broker_host=$2; shift 2 ;;
    --broker-port) need_arg "$@"; broker_port=$2; shift 2 ;;
    --no-tls) tls=0; shift ;;
    --ca-file) need_arg "$@"; ca_file=$2; shift 2 ;;
    --password-file) need_arg "$@"; password_file=$2; shift 2 ;;
    --anchor) need_arg "$@"; anchor=$2; shift 2 ;;
    --replace-anchor) replace_anchor=1; shift ;;
    --bundle) need_arg "$@"; bundle=$2; shift 2 ;;
    --no-kiosk) kiosk=0; shift ;;
    --no-gpio) gpio=0; shift ;;
    --read-only-root) read_only_root=1; shift ;;
    --data-device) need_arg "$@"; data_device=$2; shift 2 ;;
    *) common_option "$@"; shift "$shift_by" ;;
  esac
done

# --- where things go (all under --prefix when given) --------------------------------------
etc=$prefix/etc/chot
config=$etc/unit.toml
cred_dir=$etc/credentials
data_dir=$prefix/var/lib/chot
opt=$prefix/opt/chot
venv=$opt/venv
systemd_dir=$prefix/etc/systemd
boot_config=$prefix/boot/firmware/config.txt
fstab=$prefix/etc/fstab
python=${CHOT_PYTHON:-$venv/bin/python}

# --- checks before anything changes -------------------------------------------------------
if [ ! -f "$source_dir/pyproject.toml" ] || [ ! -d "$source_dir/scanner" ]; then
  die "--source $source_dir is not a chot source tree"
fi
fw=$source_dir/firmware-config
[ "$read_only_root" -eq 0 ] || [ -n "$data_device" ] || die "--read-only-root needs --data-device"
for f in "$ca_file" "$password_file" "$anchor" "$bundle"; do
  [ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done
if [ ! -f "$config" ]; then
  if [ -z "$device_id" ] || [ -z "$checkpoint" ] || [ -z "$broker_host" ]; then
    die "first enrolment needs --device-id, --checkpoint and --broker-host"
  fi
  [ -n "$anchor" ] || [ -f "$etc/trust-anchor.pem" ] || die "first enrolment needs --anchor"
fi
for id in "$device_id" "$checkpoint" "$policy"; do
  case "$id" in *[!A-Za-z0-9_.-]*) die "ids may hold only letters, digits, '.', '-' and '_': $id" ;; esac
done
case "$data_device" in *[!A-Za-z0-9=/_.:-]*) die "not a device or LABEL=/UUID= name: $data_device" ;; esac
case "$broker_host" in *[!A-Za-z0-9_.:-]*) die "not a host name: $broker_host" ;; esac
case "$broker_port" in ""|[0-9]|[0-9][0-9]|[0-9][0-9][0-9]|[0-9][0-9][0-9][0-9]|[0-9][0-9][0-9][0-9][0-9]) ;;
  *) die "not a port: $broker_port" ;; esac
if [ -z "$broker_port" ]; then
  if [ "$tls" -eq 1 ]; then broker_port=8883; else broker_port=1883; fi
fi
password=""
if [ -n "$password_file" ]; then
  password=$(head -n 1 "$password_file")
elif [ -n "${CHOT_MQTT_PASSWORD:-}" ]; then
  password=$CHOT_MQTT_PASSWORD
fi
if [ -z "$password" ] && [ ! -f "$cred_dir/mqtt-password" ]; then
  die "no MQTT password: give --password-file or set CHOT_MQTT_PASSWORD"
fi
need_root

# --- 1. system packages -------------------------------------------------------------------
packages=(python3-venv python3-pip python3-picamera2 python3-libcamera rpicam-apps-lite
          libzbar0 mosquitto-clients systemd-timesyncd)
[ "$gpio" -eq 0 ] || packages+=(python3-gpiozero python3-lgpio)
[ "$kiosk" -eq 0 ] || packages+=(cage chromium)
install_packages "${packages[@]}"

# --- 2. service users ---------------------------------------------------------------------
scanner_groups=(video)
[ "$gpio" -eq 0 ] || scanner_groups+=(gpio)
ensure_user chot /var/lib/chot "${scanner_groups[@]}"
[ "$kiosk" -eq 0 ] || ensure_user chot-kiosk /run/chot-kiosk video render input tty

# --- 3. chot in a venv that sees the OS's picamera2, libcamera and gpiozero ----------------
install_chot --system-site-packages

# --- 4. folders ---------------------------------------------------------------------------
make_dir "$etc" 0755
make_dir "$cred_dir" 0700
make_dir "$data_dir" 0750
make_dir "$data_dir/trust" 0750

# --- 5. enrolment: anchor, bundle, broker CA, MQTT credential -------------------------------
if [ -n "$anchor" ]; then
  if [ -f "$etc/trust-anchor.pem" ] && ! cmp -s "$anchor" "$etc/trust-anchor.pem" && [ "$replace_anchor" -eq 0 ]; then
    die "a different trust anchor is already pinned at $etc/trust-anchor.pem; give --replace-anchor to change it"
  fi
  put "$anchor" "$etc/trust-anchor.pem" 0644
fi
check_bundle() { # bundle anchor: the bundle must be signed by the pinned anchor
  "$python" - "$1" "$2" <<'PY'
import sys
from pathlib import Path
from verifier.bundle import BundleError, parse_bundle
from cryptography.hazmat.primitives.serialization import load_pem_public_key
try:
    anchor = load_pem_public_key(Path(sys.argv[2]).read_bytes())
    b = parse_bundle(Path(sys.argv[1]).read_bytes(), anchor)
except (BundleError, ValueError, OSError) as e:
    sys.exit(f"provision: trust bundle {sys.argv[1]} refused: {e}")
print(f"check  trust bundle version {b.version}, issued {b.issued_at:%Y-%m-%d %H:%M}Z, signed by the pinned anchor")
PY
}
if [ -n "$bundle" ]; then
  pinned=${anchor:-$etc/trust-anchor.pem}
  if have_python; then
    check_bundle "$bundle" "$pinned"
  else
    say "note   no Python with chot yet: the scanner checks the bundle at its first start"
  fi
  put "$bundle" "$etc/trust-bundle.json" 0644
fi
[ -z "$ca_file" ] || put "$ca_file" "$etc/broker-ca.pem" 0644
if [ -n "$password" ]; then
  if [ -f "$cred_dir/mqtt-password" ] && [ "$(head -n 1 "$cred_dir/mqtt-password")" = "$password" ]; then
    done_already "$cred_dir/mqtt-password"
  else
    step "write MQTT credential $cred_dir/mqtt-password (mode 0600)" write_secret "$cred_dir/mqtt-password" "$password"
  fi
fi

# --- 6. unit config ------------------------------------------------------------------------
render_config() { # target: the existing config (local edits kept) or the template
  local target=$1
  if [ -f "$config" ]; then cp "$config" "$target"; else cp "$fw/unit.toml" "$target"; fi
  [ -z "$device_id" ] || set_key "$target" unit device_id "\"$device_id\""
  [ -z "$checkpoint" ] || set_key "$target" unit checkpoint "\"$checkpoint\""
  [ -z "$policy" ] || set_key "$target" unit policy "\"$policy\""
  if [ -n "$broker_host" ]; then
    set_key "$target" mqtt host "\"$broker_host\""
    set_key "$target" mqtt port "$broker_port"
    if [ "$tls" -eq 1 ]; then set_key "$target" mqtt tls true; else set_key "$target" mqtt tls false; fi
    if [ -n "$ca_file" ]; then set_key "$target" mqtt ca_file '"/etc/chot/broker-ca.pem"'
    else comment_key "$target" mqtt ca_file; fi
  fi
  [ ! -f "$etc/trust-bundle.json" ] && [ -z "$bundle" ] && comment_key "$target" trust bundle_file
  if [ "$gpio" -eq 1 ]; then set_key "$target" gpio enabled true; else set_key "$target" gpio enabled false; fi
  if [ "$kiosk" -eq 1 ]; then set_key "$target" screen enabled true; else set_key "$target" screen enabled false; fi
}
install_config scanner.config load_unit_config 0640
if [ -z "$prefix" ] && have_user chot; then
  own_files() { chown root:chot "$config" && chown -R chot:chot "$data_dir"; }
  if [ "$(stat -c %U:%G "$config" 2>/dev/null)" = root:chot ] \
     && [ "$(stat -c %U:%G "$data_dir" 2>/dev/null)" = chot:chot ]; then
    done_already "ownership of $config and $data_dir"
  else
    system "give $config to group chot and $data_dir to user chot" \
      own_files
  fi
fi

# --- 7. systemd units, journald, watchdog, time, USB trust sticks---------------------------------------
put "$fw/systemd/chot-scanner.service" "$systemd_dir/system/chot-scanner.service" 0644
[ "$kiosk" -eq 0 ] || put "$fw/systemd/chot-kiosk.service" "$systemd_dir/system/chot-kiosk.service" 0644
put "$fw/systemd/journald-unit.conf" "$systemd_dir/journald.conf.d/chot.conf" 0644
put "$fw/pi/chot-watchdog.conf" "$systemd_dir/system.conf.d/chot-watchdog.conf" 0644
put "$fw/pi/timesyncd.conf" "$systemd_dir/timesyncd.conf.d/chot.conf" 0644
usb_rules=$prefix/etc/udev/rules.d/99-chot-usb-trust.rules
if cmp -s "$fw/pi/99-chot-usb-trust.rules" "$usb_rules"; then
  done_already "$usb_rules"
else
  put "$fw/pi/99-chot-usb-trust.rules" "$usb_rules" 0644
  system "reload udev rules" udevadm control --reload
fi

# --- 8. boot config: camera, display, hardware watchdog ------------------------------------
write_boot_block() {
  local tmp
  tmp=$(mktemp)
  if [ -f "$boot_config" ]; then sed '/^# BEGIN chot$/,/^# END chot$/d' "$boot_config" >"$tmp"; fi
  { echo "# BEGIN chot"; cat "$fw/pi/config.txt"; echo "# END chot"; } >>"$tmp"
  install -D -m 0644 "$tmp" "$boot_config"
  rm -f "$tmp"
}
if [ -z "$prefix" ] && [ ! -f "$boot_config" ]; then
  say "note   $boot_config not found (not Raspberry Pi OS Bookworm?): camera and watchdog settings left alone"
elif [ -f "$boot_config" ] && sed -n '/^# BEGIN chot$/,/^# END chot$/p' "$boot_config" | sed '1d;$d' | cmp -s - "$fw/pi/config.txt"; then
  done_already "chot block in $boot_config"
else
  step "write the chot block into $boot_config (reboot to apply)" write_boot_block
fi

# --- 9. read-only root with the data partition writable -----------------------------------
if [ "$read_only_root" -eq 1 ]; then
  fstab_line=$(grep -v '^#' "$fw/pi/fstab.data" | sed "s|^LABEL=chot-data|$data_device|")
  add_fstab() { printf '%s\n' "$fstab_line" >>"$fstab"; }
  if [ -f "$fstab" ] && grep -q '[[:space:]]/var/lib/chot[[:space:]]' "$fstab"; then
    done_already "/var/lib/chot in $fstab"
  else
    step "mount $data_device on /var/lib/chot (add to $fstab)" add_fstab
  fi
  if [ -z "$prefix" ] && grep -q 'boot=overlay' /boot/firmware/cmdline.txt 2>/dev/null; then
    done_already "overlay root file system"
  else
    system "turn on the overlay root file system (raspi-config; reboot to apply)" \
      raspi-config nonint do_overlayfs 0
  fi
fi

# --- 10. services -------------------------------------------------------------------------
services=(chot-scanner.service)
[ "$kiosk" -eq 0 ] || services+=(chot-kiosk.service)
start_services "${services[@]}"
finish "provisioned: unit ${device_id:-(as configured)}; check it with: $venv/bin/chot scanner check-config ${config#"$prefix"}"

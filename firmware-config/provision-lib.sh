# Shared steps of provision.sh (a unit) and provision-central.sh (the central); sourced, not run.
# The caller sets: dry_run (0|1), prefix ("" or a folder), source_dir, opt, venv.
# shellcheck shell=bash disable=SC2034,SC2154  # the caller sets and reads these variables

changed=0
# What is copied to /opt/chot/src: enough to pip install chot and to keep firmware-config/.
SOURCE_PARTS=(pyproject.toml README.md chot verifier keys scanner dashboard firmware-config)

die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
need_arg() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

# common_option ARGS...: the options both scripts take (--source, --prefix, --dry-run, --help);
# sets shift_by to the number of arguments used, and dies on an unknown option.
common_option() {
  case "$1" in
    --source) need_arg "$@"; source_dir=$2; shift_by=2 ;;
    --prefix) need_arg "$@"; prefix=${2%/}; shift_by=2 ;;
    --dry-run) dry_run=1; shift_by=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
}
# need_root: changing the running system needs root; a dry run or a --prefix install does not.
need_root() {
  if [ -z "$prefix" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or with --dry-run, or --prefix DIR)"
  fi
}
# have_python: a Python with chot importable is there (the venv, or $CHOT_PYTHON).
have_python() { [ -x "$python" ] || command -v "$python" >/dev/null 2>&1; }
say() { printf '%s\n' "$*"; }
done_already() { say "ok     $*"; }

# Every change goes through `step` (files) or `system` (commands acting on the running
# system), so --dry-run and --prefix are honoured in one place. `changed` tells whether a file
# step ran, so the services are restarted only when something they read changed.
step() {
  local what=$1; shift
  changed=1
  if [ "$dry_run" -eq 1 ]; then say "would  $what"; return 0; fi
  say "doing  $what"
  "$@"
}
system() {
  local what=$1 before=$changed
  shift
  if [ "$dry_run" -eq 0 ] && [ -n "$prefix" ]; then say "skip   $what (--prefix: not on this system)"; return 0; fi
  step "$what" "$@"
  changed=$before
}

# put SRC DEST MODE: install a file unless it is already there with the same content.
put() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then done_already "$2"; return 0; fi
  step "install $2 (mode $3)" install -D -m "$3" "$1" "$2"
}
# make_dir DIR MODE
make_dir() {
  if [ -d "$1" ]; then done_already "$1/"; return 0; fi
  step "create $1/ (mode $2)" install -d -m "$2" "$1"
}
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
have_user() { getent passwd "$1" >/dev/null; }
have_group() { getent group "$1" >/dev/null; }

# install_packages PKG...: apt-get install those not installed yet.
install_packages() {
  local p missing=()
  for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ]; then done_already "packages $*"; return 0; fi
  system "apt-get update" apt-get update -qq
  system "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# ensure_user NAME HOME GROUP...: a system user without login, in those groups that exist.
ensure_user() {
  local name=$1 home=$2 g
  shift 2
  if have_user "$name"; then
    done_already "user $name"
  else
    system "create system user $name" useradd --system --user-group --home-dir "$home" \
      --no-create-home --shell /usr/sbin/nologin "$name"
  fi
  for g in "$@"; do
    if ! have_group "$g"; then say "note   group $g does not exist here; $name is not added to it"; continue; fi
    if id -nG "$name" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
      done_already "user $name in group $g"
    else
      system "add user $name to group $g" usermod -a -G "$g" "$name"
    fi
  done
}

source_differs() {
  local part
  [ -d "$opt/src" ] || return 0
  for part in "${SOURCE_PARTS[@]}"; do
    diff -rq -x __pycache__ -x '*.egg-info' "$source_dir/$part" "$opt/src/$part" >/dev/null 2>&1 || return 0
  done
  return 1
}
copy_source() {
  rm -rf "$opt/src.new"
  mkdir -p "$opt/src.new"
  tar -C "$source_dir" --exclude=__pycache__ --exclude='*.egg-info' -cf - "${SOURCE_PARTS[@]}" \
    | tar -C "$opt/src.new" -xf -
  rm -rf "$opt/src"
  mv "$opt/src.new" "$opt/src"
}
pip_install_chot() {
  "$venv/bin/pip" install -q "$opt/src"
  printf '%s\n' "$1" >"$venv/.chot-installed"
}
# install_chot [VENV-OPTION...]: copy the source to $opt/src and pip install it into $venv.
install_chot() {
  if source_differs; then step "copy chot source to $opt/src" copy_source; else done_already "$opt/src"; fi
  if [ -x "$venv/bin/python" ]; then
    done_already "venv $venv"
  else
    system "create venv $venv $*" python3 -m venv "$@" "$venv"
  fi
  local stamp
  stamp=$(cd "$source_dir" && find "${SOURCE_PARTS[@]}" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info/*' \
    -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)
  if [ -f "$venv/.chot-installed" ] && [ "$(cat "$venv/.chot-installed")" = "$stamp" ]; then
    done_already "chot installed in $venv"
  else
    system "pip install chot from $opt/src into $venv" pip_install_chot "$stamp"
  fi
}

# set_key FILE SECTION KEY VALUE: set (or uncomment) one key inside one [section] of a TOML
# file ("" = the top level, before any section).
set_key() {
  local tmp
  tmp=$(mktemp)
  awk -v section="$2" -v key="$3" -v value="$4" '
    BEGIN { in_section = (section == "") }
    /^\[.*\]/ { if (in_section && !done) { print key " = " value; done = 1 }
                in_section = ($0 == "[" section "]") }
    in_section && !done && ($0 ~ "^#? *" key " *=") { print key " = " value; done = 1; next }
    { print }
    END { if (!done) { if (!in_section) print "[" section "]"; print key " = " value } }
  ' "$1" >"$tmp"
  cat "$tmp" >"$1"
  rm -f "$tmp"
}
# comment_key FILE SECTION KEY: turn a key off (back to its default).
comment_key() {
  local tmp
  tmp=$(mktemp)
  awk -v section="$2" -v key="$3" '
    BEGIN { in_section = (section == "") }
    /^\[.*\]/ { in_section = ($0 == "[" section "]") }
    in_section && ($0 ~ "^" key " *=") { print "# " $0; next }
    { print }
  ' "$1" >"$tmp"
  cat "$tmp" >"$1"
  rm -f "$tmp"
}

# install_config MODULE LOADER MODE: render the config (the caller's render_config) into a
# temporary file, check that it loads through chot's own loader, then install it as $config.
install_config() {
  local rendered
  rendered=$(mktemp)
  render_config "$rendered"
  if have_python && ! "$python" - "$1" "$2" "$rendered" <<'PY'
import importlib, sys
module, loader, path = sys.argv[1:]
try:
    getattr(importlib.import_module(module), loader)(path)
except Exception as e:  # every loader error is a ConfigError; print it, not a traceback
    sys.exit(f"config error: {e}")
PY
  then
    rm -f "$rendered"
    die "the rendered config does not load (see above); $config was left as it was"
  fi
  put "$rendered" "$config" "$3"
  rm -f "$rendered"
}

# write_secret FILE VALUE: a 0600 file written by a shell builtin, so the value never shows
# on a command line.
write_secret() { (umask 077 && printf '%s\n' "$2" >"$1"); }

# start_services SERVICE...: reload systemd, enable and start them, and restart them (and
# journald and timesyncd, for their limits) when a file changed in this run.
start_services() {
  system "reload systemd" systemctl daemon-reload
  system "enable and start $*" systemctl enable --now "$@"
  if [ "$changed" -eq 1 ]; then
    system "restart $* with the new files" systemctl restart "$@"
    system "restart journald and timesyncd with the new settings" \
      systemctl try-restart systemd-journald.service systemd-timesyncd.service
  fi
}
finish() {
  if [ "$dry_run" -eq 1 ]; then say "dry run: nothing was changed"; else say "$*"; fi
}

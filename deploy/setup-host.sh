#!/usr/bin/env bash
# Set up a Debian or Ubuntu host to run the ChatFlow server under systemd (docs/deploy.md):
# Python and venv from apt, the system user chatflow, the package in /opt/chatflow/venv,
# the unit and its settings file, the service enabled and started, the firewall's ports.
# Idempotent: each step looks first and changes only what differs; a second run says
# "nothing changed". --dry-run changes nothing; --root DIR installs the files under DIR
# and leaves the system (apt, users, systemd, firewall) alone.
set -Eeuo pipefail
trap 'printf "%s: error: %s failed (exit status %d); nothing after it was done\n" "$PROG" "$BASH_COMMAND" $? >&2' ERR
umask 022 # the venv and the unit must be readable by the service's user and systemd

readonly PROG=setup-host.sh
readonly SERVICE=chatflow-server
readonly SERVICE_USER=chatflow
readonly PREFIX=/opt/chatflow
readonly VENV=$PREFIX/venv
readonly STAMP=$PREFIX/installed-from
readonly UNIT_PATH=/etc/systemd/system/$SERVICE.service
readonly ENV_PATH=/etc/chatflow/server.env
readonly MIN_PYTHON=3.11
readonly HEALTH_WAIT=30 # seconds the started service may take to answer /health

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly DEPLOY_DIR=$here
readonly CHECKOUT=${here%/deploy}

usage() {
    cat <<EOF
usage: $PROG [--source SRC] [--python PYTHON] [--root DIR] [--dry-run] [--no-start] [--reinstall]

Installs the ChatFlow server as the systemd service $SERVICE on this Debian/Ubuntu host.

  --source SRC     what pip installs: a checkout folder (default: $CHECKOUT),
                   a wheel or sdist file, or a git URL such as
                   git+https://HOST/ORG/chatflow.git@v0.1.0 (a tag, branch or commit)
  --python PYTHON  the interpreter the venv is made with (default python3; $MIN_PYTHON or later)
  --root DIR       install the files under DIR as if it were /, for a throwaway root:
                   no apt-get, no user, no systemctl, no firewall (each said as skipped)
  --dry-run        print what would change, change nothing
  --no-start       enable the service but neither start nor restart it
  --reinstall      install the package again even if the same source is installed
  -h, --help       this text
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: error: %s (see --help)\n' "$PROG" "$*" >&2; exit 2; }

source_spec=$CHECKOUT
python=python3
root=""
dry_run=0
start=1
reinstall=0
while [ $# -gt 0 ]; do
    case $1 in
        --source | --python | --root)
            if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$1 needs a value"; fi
            case $1 in
                --source) source_spec=$2 ;;
                --python) python=$2 ;;
                --root) root=$2 ;;
            esac
            shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --no-start) start=0; shift ;;
        --reinstall) reinstall=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done

if [ -n "$root" ]; then
    case $root in /*) ;; *) root=$(pwd)/$root ;; esac
    root=${root%/}
    [ -n "$root" ] || usage_error "--root / is the system itself: leave --root out"
fi
if [ -z "$root" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo $0), or with --dry-run or --root DIR"
fi

# What pip installs, and what identifies it: a folder by the digest of the files that go
# into the package, a file by its own, a URL by itself (--reinstall for a moved branch).
source_kind=""
if [ -d "$source_spec" ]; then
    source_spec=$(cd "$source_spec" && pwd)
    if [ ! -f "$source_spec/setup.cfg" ] || [ ! -d "$source_spec/chatflow" ]; then
        usage_error "--source $source_spec is not a ChatFlow checkout (no setup.cfg and chatflow/)"
    fi
    source_kind=folder
elif [ -f "$source_spec" ]; then
    case $source_spec in
        *.whl | *.tar.gz | *.zip)
            source_kind="file"
            source_spec=$(cd "$(dirname "$source_spec")" && pwd)/$(basename "$source_spec") ;;
        *) usage_error "--source $source_spec is not a wheel or sdist (.whl, .tar.gz, .zip)" ;;
    esac
else
    case $source_spec in
        git+http://* | git+https://* | git+ssh://* | git+file://*) source_kind=git ;;
        *) usage_error "--source $source_spec: no such folder or file, and not a git URL (git+https://...)" ;;
    esac
fi

source_digest() {
    case $source_kind in
        folder)
            (
                cd "$source_spec"
                {
                    for f in setup.cfg setup.py pyproject.toml MANIFEST.in README.md; do
                        [ -f "$f" ] && printf '%s\0' "$f"
                    done
                    find chatflow -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z
                } | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
            ) ;;
        file) sha256sum "$source_spec" | cut -d' ' -f1 ;;
        git) printf 'url' ;;
    esac
}

changes=0
# run DESCRIPTION COMMAND...: one change, carried out (or only described, in a dry run).
run() {
    local what=$1
    shift
    changes=$((changes + 1))
    if [ "$dry_run" -eq 1 ]; then
        say "would $what"
    else
        say "$what"
        "$@"
    fi
}
skipped() { say "$1: skipped under --root (would $2)"; }

# A setting of the installed settings file (the shipped one's in a dry run before it exists).
setting() {
    local file=$root$ENV_PATH value
    [ -f "$file" ] || file=$DEPLOY_DIR/$SERVICE.env
    value=$(sed -n "s/^[[:space:]]*$1=//p" "$file" | tail -n 1)
    value=${value%\"}
    value=${value#\"}
    printf '%s' "$value"
}

python_ok() { # PYTHON: runs, and is MIN_PYTHON or later
    "$1" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" 2>/dev/null
}

# -- 1. packages: Python and its venv module, git for a git source
step_packages() {
    local wanted=(python3 python3-venv) missing=() pkg
    [ "$source_kind" = git ] && wanted+=(git)
    if [ -n "$root" ]; then
        skipped packages "apt-get install ${wanted[*]} where missing"
        return
    fi
    if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        die "apt-get not found: this script is for Debian and Ubuntu (docs/deploy.md says what it does, to do by hand elsewhere)"
    fi
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: ${wanted[*]} installed"
    else
        run "apt-get install ${missing[*]}" apt_install "${missing[@]}"
    fi
}
apt_install() { # apt's progress left out, its errors not
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# -- 2. the interpreter
step_python() {
    if ! command -v "$python" >/dev/null; then
        [ "$dry_run" -eq 1 ] && { say "python: $python not found yet (the packages step installs python3)"; return; }
        die "$python not found"
    fi
    python_ok "$python" ||
        die "$python is Python $("$python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'); ChatFlow needs $MIN_PYTHON or later (Debian 12, Ubuntu 24.04), or name one with --python"
    say "python: $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
}

# -- 3. the service's user: a system account, no home, no shell
step_user() {
    if [ -n "$root" ]; then
        skipped "user $SERVICE_USER" "useradd --system $SERVICE_USER"
    elif getent passwd "$SERVICE_USER" >/dev/null; then
        say "user $SERVICE_USER: exists"
    else
        run "create the system user $SERVICE_USER" useradd --system --user-group --home-dir /nonexistent \
            --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
}

# -- 4. the venv, owned by root: the service can read its code, not change it
package_changed=0
step_venv() {
    local venv=$root$VENV
    if [ -x "$venv/bin/python" ] && python_ok "$venv/bin/python"; then
        say "venv $venv: exists"
    elif [ -e "$venv" ]; then
        run "make the venv $venv again (its Python does not run, or is older than $MIN_PYTHON)" "$python" -m venv --clear "$venv"
        package_changed=1
    else
        run "make the venv $venv" make_venv "$venv"
        package_changed=1
    fi
}
make_venv() {
    mkdir -p "$(dirname "$1")"
    "$python" -m venv "$1"
}

# -- 5. the package, from the source; the stamp says what is installed
step_package() {
    local venv=$root$VENV stamp=$root$STAMP wanted
    wanted=$(printf 'source=%s\ndigest=%s\n' "$source_spec" "$(source_digest)")
    if [ "$reinstall" -eq 0 ] && [ "$package_changed" -eq 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] &&
        [ -x "$venv/bin/$SERVICE" ] && "$venv/bin/python" -c 'import chatflow.server.main' 2>/dev/null; then
        say "package: installed from $source_spec, unchanged"
        return
    fi
    run "pip install $source_spec into $venv" install_package "$venv" "$stamp" "$wanted"
    package_changed=1
}
install_package() {
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check --use-pep517 "$source_spec"
    printf '%s' "$3" >"$2"
}

# -- 6. the unit and the settings file
unit_changed=0
step_unit() {
    local target=$root$UNIT_PATH
    if cmp -s "$DEPLOY_DIR/$SERVICE.service" "$target"; then
        say "unit $target: unchanged"
        return
    fi
    run "install the unit $target" install -D -m 0644 "$DEPLOY_DIR/$SERVICE.service" "$target"
    unit_changed=1
}
step_settings() {
    local target=$root$ENV_PATH
    if [ ! -e "$target" ]; then
        run "install the settings $target" install -D -m 0644 "$DEPLOY_DIR/$SERVICE.env" "$target"
    elif cmp -s "$DEPLOY_DIR/$SERVICE.env" "$target"; then
        say "settings $target: unchanged"
    else
        say "settings $target: edited, kept as it is (the shipped one is $DEPLOY_DIR/$SERVICE.env)"
    fi
}

# -- 7. systemd: reload, enable, start (or restart after a change), then ask /health
step_service() {
    if [ -n "$root" ]; then
        skipped systemd "systemctl daemon-reload, enable --now $SERVICE"
        return
    fi
    if [ ! -d /run/systemd/system ]; then
        say "systemd: not running on this host (no /run/systemd/system): $SERVICE not enabled or started"
        return
    fi
    [ "$unit_changed" -eq 1 ] && run "systemctl daemon-reload" systemctl daemon-reload
    if systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
        say "service $SERVICE: enabled"
    else
        run "systemctl enable $SERVICE" systemctl enable --quiet "$SERVICE"
    fi
    if [ "$start" -eq 0 ]; then
        say "service $SERVICE: not started or restarted (--no-start)"
        return
    fi
    if ! systemctl is-active --quiet "$SERVICE"; then
        run "systemctl start $SERVICE" systemctl start "$SERVICE"
    elif [ "$package_changed" -eq 1 ] || [ "$unit_changed" -eq 1 ]; then
        run "systemctl restart $SERVICE (its package or unit changed)" systemctl restart "$SERVICE"
    else
        say "service $SERVICE: running"
    fi
    [ "$dry_run" -eq 1 ] || check_health
}
check_health() {
    local host port url
    host=$(setting CHATFLOW_HOST)
    case $host in '' | 0.0.0.0 | '::') host=127.0.0.1 ;; esac
    port=$(setting CHATFLOW_HEALTH_PORT)
    url="http://$host:$port/health"
    if "$root$VENV/bin/python" - "$url" "$HEALTH_WAIT" <<'EOF'; then
import sys, time, urllib.request
url, wait = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + wait
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            print(f"{url} answers {response.status} {response.read().decode()}")
            sys.exit(0)
    except OSError as exc:
        if time.monotonic() >= deadline:
            print(f"{url} does not answer after {wait:g} s: {exc}")
            sys.exit(1)
        time.sleep(0.5)
EOF
        say "health: ok"
    else
        die "$SERVICE does not answer; see: journalctl -u $SERVICE -n 50"
    fi
}

ufw_allow() { ufw allow "$1" >/dev/null; }

# -- 8. the firewall: the two ports of the settings file
step_firewall() {
    local ports=() port
    for port in "$(setting CHATFLOW_WS_PORT)" "$(setting CHATFLOW_HEALTH_PORT)"; do
        case $port in '' | *[!0-9]*) die "$root$ENV_PATH: '$port' is not a port number" ;; esac
        ports+=("$port/tcp")
    done
    if [ -n "$root" ]; then
        skipped firewall "ufw allow ${ports[*]}"
    elif command -v ufw >/dev/null; then
        local added
        added=$(ufw show added 2>/dev/null || true)
        for port in "${ports[@]}"; do
            if grep -qx "ufw allow $port" <<<"$added"; then
                say "firewall: ufw allows $port"
            else
                run "ufw allow $port" ufw_allow "$port"
            fi
        done
        ufw status 2>/dev/null | grep -q '^Status: active' ||
            say "firewall: ufw is inactive; the rules apply once it is enabled (allow ssh before enabling it: ufw allow 22/tcp)"
    elif command -v firewall-cmd >/dev/null; then
        say "firewall: firewalld found, left alone; to open the ports: $(printf 'firewall-cmd --permanent --add-port=%s; ' "${ports[@]}")firewall-cmd --reload"
    else
        say "firewall: none on this host (no ufw); the cloud's security group must allow ${ports[*]}"
    fi
}

[ "$dry_run" -eq 1 ] && say "dry run: nothing is changed"
[ -n "$root" ] && say "installing under $root"
step_packages
step_python
step_user
step_venv
step_package
step_unit
step_settings
step_service
step_firewall
if [ "$dry_run" -eq 1 ]; then
    say "dry run: $changes change(s) would be made"
elif [ "$changes" -eq 0 ]; then
    say "nothing changed"
else
    say "done: $changes change(s)"
fi

#!/usr/bin/env bash
# Install what the local services need on a fresh Debian/Ubuntu machine (CI calls this too):
#   - PostgreSQL server binaries (Debian's `postgresql` package; also creates the `postgres` user
#     that runs the server when we are root, since PostgreSQL refuses to run as root);
#   - the Python requirements (moto for the Kinesis+S3 emulator, boto3, psycopg), unless --no-pip.
# Idempotent: what is already there is left alone. Usage: bash deploy/local/install.sh [--no-pip]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python3}"
with_pip=1
[[ "${1:-}" == "--no-pip" ]] && with_pip=0

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || [[ -n "${PG_BIN:-}" && -x "${PG_BIN}/pg_ctl" ]]
}

if ! have_postgres || ! id postgres >/dev/null 2>&1; then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install.sh: need root or sudo to apt-get install postgresql" >&2; exit 1; }
    sudo="sudo"
  fi
  # No default cluster on 5432: our server is created under .local/ by `python -m deploy.local up`.
  # (--force-confold below keeps this file when the package that owns it arrives.)
  if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
fi

if [[ "$with_pip" == 1 ]]; then
  "$python" -m pip install -q -r "$repo_root/requirements.txt"
fi

echo "install.sh: PostgreSQL $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1), python deps ok"

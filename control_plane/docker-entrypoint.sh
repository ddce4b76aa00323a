#!/bin/sh
# Entry point of the control-plane image: `mallard-control-plane COMMAND [ARGS...]`.
# Each process runs on its own (grpc.aio and gRPC's fork-unsafety keep the gateway apart; the
# Helm chart runs one Deployment per command). Anything else is executed as given, e.g. `sh`.
set -e
app=control_plane.scheduler.app
level=${MALLARD_LOG_LEVEL:-INFO}

usage() {
  cat <<USAGE
usage: mallard-control-plane COMMAND [ARGS...]
  api          REST API on \$MALLARD_API_HOST:\$MALLARD_API_PORT (migrates the database first)
  gateway      gRPC gateway: agent link (mTLS) and enrollment (TLS)
  worker       Celery worker of the scheduler (no beat)
  beat         Celery beat of the scheduler (run exactly one)
  scheduler    worker and beat in one process (small installs)
  migrate      bring the database schema to the newest migration, then exit
  prepare      migrate and create the PKI (CA, gateway certificate), then exit
  worker-ping  exit 0 when this pod's worker answers a Celery ping (liveness probe)
  version      print the version
USAGE
}

command=${1:-api}
[ $# -gt 0 ] && shift
case "$command" in
  api) exec python -m control_plane.api "$@" ;;
  gateway) exec python -m control_plane.gateway "$@" ;;
  worker) exec celery -A "$app" worker --pool solo --hostname "worker@%h" --loglevel "$level" "$@" ;;
  beat) exec celery -A "$app" beat --loglevel "$level" "$@" ;;
  scheduler) exec python -m control_plane.scheduler "$@" ;;
  migrate | prepare) exec python - "$command" <<'PY'
import fcntl
import sys

from sqlalchemy import create_engine, text

from control_plane.db import migrate
from control_plane.pki import CertificateAuthority
from control_plane.settings import get_settings

settings = get_settings()
url = settings.effective_database_url
if url.startswith("postgresql"):
    # Every API and gateway pod prepares at start; one advisory lock runs the migrations one at a time.
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7410)"))
        try:
            migrate(url)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7410)"))
    engine.dispose()
else:
    migrate(url)
if sys.argv[1] == "prepare":
    # A file lock on the shared state volume, so two pods starting together never mint two CAs.
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / ".prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ca = CertificateAuthority.load_or_create(settings.pki_dir)
        ca.ensure_server_certificate(settings.gateway_tls_names)
        ca.ensure_jwt_keys()
PY
    ;;
  worker-ping) exec celery -A "$app" inspect ping --destination "worker@$(cat /proc/sys/kernel/hostname)" --timeout "${1:-10}" ;;
  version) exec python -c 'import shared; print("mallard-control-plane", shared.__version__)' ;;
  help | -h | --help) usage ;;
  *) exec "$command" "$@" ;;
esac

"""`python -m control_plane.scheduler`: the worker and its beat in one process (for `mallard dev up`).

Celery's worker turns SIGTERM into a warm shutdown: it finishes the task in hand, stops the
embedded beat and exits 0.
"""

from __future__ import annotations

from control_plane.scheduler.app import app, worker_argv


def main() -> None:
    app.worker_main(argv=worker_argv())


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Django's command-line entry point; `python manage.py agent` runs the tunnel agent."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from dashboard.data_dir import data_dir, prepare

    # Before Django reads the settings (which write nothing): the data directory SQLite lives in,
    # and the key kept there so that sessions survive restarts, for the agent and every other command.
    directory = data_dir()
    try:
        prepare(directory)
    except OSError as error:
        print(f"error: AGENT_DATA_DIR {directory}: {error.strerror or error}", file=sys.stderr)
        sys.exit(2)
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A bad setting (AGENT_UPSTREAM_TIMEOUT=abc): one line that names it, not a traceback.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

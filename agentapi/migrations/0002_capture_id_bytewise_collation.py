"""Capture ids (base62 KSUIDs) sort by time only bytewise: `airt_Z` < `airt_a`.

SQLite compares text bytewise already; PostgreSQL uses the database's collation, which is often a
linguistic one (en_US.UTF-8) that orders `a` before `Z`. Eviction (`id <= cutoff`), newest-first
lists and cursor paging all rely on the byte order, so the columns get the "C" collation there.
"""

from django.db import migrations


def bytewise_ids(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in ("id", "replay_of"):
        schema_editor.execute(
            f'ALTER TABLE agentapi_capture ALTER COLUMN {column} TYPE varchar(40) COLLATE "C"'
        )


class Migration(migrations.Migration):
    dependencies = [("agentapi", "0001_initial")]

    operations = [migrations.RunPython(bytewise_ids, migrations.RunPython.noop)]

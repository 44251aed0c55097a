"""Capture rows keep their bytes last, so reading a capture's metadata never walks its body (SQLite).

SQLite stores a row's columns in table order and moves a value that does not fit in the page into
a chain of overflow pages; reading any column stored after such a value walks the whole chain, a
page read per 4 KiB. `request_raw` and `response_raw` came before most of the metadata a list shows
(sizes, status, completeness...), so the inspector's first page read every byte of the 100 captures
it lists: with 95 captures of 512 KiB (48 MB, inside the default inspect_db_size) it took 11 ms
instead of 1.3 ms (issue 11). The table is rebuilt with the two byte columns last, by the rebuild
Django's SQLite backend itself uses for a changed column (indexes restored, rows copied as they are).

The state moves the two fields to the end too, so a later rebuild keeps this order. PostgreSQL
keeps values over ~2 KB out of the row (TOAST): nothing to do there.
"""

from django.db import migrations, models


def bytes_last(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    # The state here already has the byte fields last (the operation before this one).
    schema_editor._remake_table(apps.get_model("agentapi", "Capture"))


class Migration(migrations.Migration):
    dependencies = [("agentapi", "0007_websocket_frames")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="capture", name="request_raw"),
                migrations.RemoveField(model_name="capture", name="response_raw"),
                migrations.AddField(model_name="capture", name="request_raw", field=models.BinaryField()),
                migrations.AddField(model_name="capture", name="response_raw", field=models.BinaryField(null=True)),
            ],
        ),
        migrations.RunPython(bytes_last, migrations.RunPython.noop),
    ]

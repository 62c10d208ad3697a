"""The shared `released_ctx` fixture gives each test its own copy of real releases."""

from __future__ import annotations

import duckdb

from portal.catalog.releases import current_release


def test_released_ctx_has_current_releases_of_bundled_datasets(released_ctx):
    for dataset_id in ("eunomia", "wdbc"):
        release = current_release(released_ctx.conn, released_ctx.settings, dataset_id)
        assert release.dev_path.is_file() and release.holdout_path.is_file()
        assert release.directory.is_relative_to(released_ctx.settings.home)
        con = duckdb.connect(str(release.dev_path), read_only=True)
        try:
            for table in release.tables.values():
                count = con.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
                assert count == table.dev_rows
        finally:
            con.close()


def test_released_ctx_copies_the_salt_so_rebuilt_pseudonyms_match(released_ctx):
    from portal.catalog.builder import build_release

    before = current_release(released_ctx.conn, released_ctx.settings, "wdbc")
    build_release(released_ctx.settings, released_ctx.conn, "wdbc", actor="test")
    after = current_release(released_ctx.conn, released_ctx.settings, "wdbc")
    assert after.version != before.version
    keys = []
    for release in (before, after):
        con = duckdb.connect(str(release.dev_path), read_only=True)
        keys.append(set(r[0] for r in con.execute("SELECT case_id FROM cases").fetchall()))
        con.close()
    assert keys[0] == keys[1]


def test_released_ctx_homes_are_independent(released_ctx, tmp_path):
    wdbc = current_release(released_ctx.conn, released_ctx.settings, "wdbc")
    assert str(tmp_path) in str(wdbc.directory)

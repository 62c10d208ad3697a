from tests.factories import make_release, make_user


def test_make_release_registers_a_current_release(ctx):
    release = make_release(ctx, "toy", {"person": "SELECT range AS person_id, 1990 AS yob FROM range(20)"},
                           {"person": "SELECT range + 100 AS person_id, 1980 AS yob FROM range(5)"})
    assert release.tables["person"].dev_rows == 20
    assert release.tables["person"].holdout_rows == 5
    assert release.tables["person"].person_column == "person_id"
    assert release.dev_path.exists() and release.holdout_path.exists()


def test_make_user_resolves_team(ctx):
    p = make_user(ctx, "a@x.example", team="acme-health")
    assert p.team == "acme-health" and p.role == "member"

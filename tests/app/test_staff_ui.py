"""AppTest of the staff screens' review aids: the de-identification report as sections with the
dev / held-out / suppressed split, and two-step confirmations that act only on what they named."""

from __future__ import annotations

from portal import audit
from portal.catalog.releases import current_release
from tests.app.helpers import app, claims, texts

STAFF = "staff@platform.example"
FOUNDER = "founder@gamma-ai.example"


def _split_frame(at):
    return next(f.value for f in at.dataframe if "held out (validation only)" in f.value.columns)


def test_catalog_report_tab_shows_sections_and_the_split_to_a_member(released):
    at = app("catalog.py", claims(FOUNDER))
    at.run()
    assert not at.exception
    report = current_release(released.conn, released.settings, "eunomia").report()
    split = _split_frame(at).set_index("split")
    assert split.loc["persons", "dev (queryable)"] == report["persons"]["dev"]
    assert split.loc["persons", "held out (validation only)"] == report["persons"]["holdout"]
    assert split.loc["persons", "suppressed (k-anonymity)"] == report["persons"]["suppressed"]
    headings = [s.value for s in at.subheader]
    for title in ("Persons and rows", "Columns dropped", "Columns transformed", "k-anonymity",
                  "Residual identifier scan"):
        assert title in headings
    shown = texts(at)
    assert "# De-identification report" not in shown and "## Columns" not in shown
    assert "person_source_value" in shown and "birth_year_cap" in shown


def test_datasets_page_rebuilds_a_release_only_after_confirmation(released):
    at = app("datasets_admin.py", claims(STAFF))
    at.run()
    at.selectbox(key="admin_dataset").select("wdbc").run()
    assert "Persons and rows" in [s.value for s in at.subheader]
    at.button(key="admin_rebuild_release").click().run()
    asked = [w.value for w in at.warning if "Build a new release" in w.value]
    assert asked and "wdbc" in asked[0] and "Release 1 becomes superseded" in asked[0]
    at.button(key="admin_rebuild_release__no").click().run()  # Cancel
    assert not [w for w in at.warning if "Build a new release" in w.value]
    assert current_release(released.conn, released.settings, "wdbc").version == "1"
    at.button(key="admin_rebuild_release").click().run()
    at.button(key="admin_rebuild_release__yes").click().run()
    assert not at.exception
    assert any("Release 2 of wdbc is now current" in s.value for s in at.success)
    assert current_release(released.conn, released.settings, "wdbc").version == "2"
    assert audit.list_events(released.conn, action="release.build", decision="done")


def test_a_confirmation_is_dropped_when_the_selection_changes(released):
    at = app("datasets_admin.py", claims(STAFF))
    at.run()
    at.selectbox(key="admin_dataset").select("wdbc").run()
    at.button(key="admin_rebuild_extracts").click().run()
    assert any("governed extract" in w.value for w in at.warning)
    at.selectbox(key="admin_dataset").select("eunomia").run()
    assert not any("governed extract" in w.value for w in at.warning)
    assert [b.key for b in at.button if b.key == "admin_rebuild_extracts__yes"] == []
    assert not audit.list_events(released.conn, action="extracts.rebuild")


def test_a_member_cannot_open_the_datasets_page(released):
    at = app("datasets_admin.py", claims(FOUNDER))
    at.run()
    assert [e.value.replace("\\", "").split(" — ")[0] for e in at.error] == ["staff_only"]
    assert "Rebuild release" not in texts(at)


def _scored_run(ctx) -> int:
    from portal.identity import principal_for_email
    from portal.services import sandbox as services
    from tests.integration.sandbox.helpers import need_isolation, run_queue, wdbc_model
    from tests.unit.sandbox.factories import MODEL_CARD

    need_isolation()
    member = principal_for_email(ctx.conn, "analyst@acme-health.example")
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    return run_id


def test_review_shows_checks_and_the_full_report_with_exact_figures(released):
    from portal.identity import principal_for_email
    from portal.services import sandbox as services

    run_id = _scored_run(released)
    staff = principal_for_email(released.conn, STAFF)
    report = services.staff_report(released, staff, run_id)
    check = services.run_status(released, staff, run_id)["singling_out"]
    at = app("validation_runs.py", claims(STAFF))
    at.run()
    at.selectbox(key="vr_run").select(run_id).run()
    assert not at.exception
    headings = [s.value for s in at.subheader]
    assert headings.index("Disclosure checks") < headings.index("Report")
    checks = next(f.value for f in at.dataframe if "check" in f.value.columns)
    row = checks.set_index("check").loc["singling_out"]
    assert row["result"] == ("FLAGGED" if check["flagged"] else "passed")
    assert f"rows {check['signals']['rows']}" in row["figures"]
    assert f"distinct_ratio {check['signals']['distinct_ratio']!r}" in row["figures"]
    overall = next(f.value for f in at.dataframe if "figure" in f.value.columns)
    auroc = overall.set_index("figure").loc["AUROC (DeLong)", "value"]
    assert auroc == repr(report["metrics"]["overall"]["auroc"]["value"])  # exact, not rounded
    assert any("sensitivity" in f.value.columns for f in at.dataframe)
    assert any("subgroup" in f.value.columns for f in at.dataframe)


def test_rerun_all_queues_only_after_confirmation(released):
    from portal.identity import principal_for_email
    from portal.services import sandbox as services

    run_id = _scored_run(released)
    services.release_run(released, principal_for_email(released.conn, STAFF), run_id)
    at = app("validation_runs.py", claims(STAFF))
    at.run()
    at.selectbox(key="vr_rerun_task").select("wdbc-malignancy").run()
    at.button(key="vr_rerun").click().run()
    assert any("wdbc-malignancy" in w.value.replace("\\", "") for w in at.warning)
    assert not audit.list_events(released.conn, action="sandbox.rerun")
    at.button(key="vr_rerun__yes").click().run()
    assert not at.exception
    assert any("Queued 1 run(s)" in s.value for s in at.success)
    assert audit.list_events(released.conn, action="sandbox.rerun")


def test_audit_pickers_offer_what_the_log_holds_and_filter(seeded):
    import datetime as dt

    audit.record(seeded.conn, actor="a@x.example", team="gamma-ai", action="query.run",
                 target="dataset:eunomia", decision="denied", reason="grant_revoked",
                 details={"sql_sha256": "ab" * 8, "limits": {"rows": 5000, "seconds": 30},
                          "tables": ["person", "drug_exposure"]})
    audit.record(seeded.conn, actor="b@y.example", team="beta-bio", action="request.submit",
                 decision="allowed")
    at = app("audit_log.py", claims(STAFF))
    at.run()
    assert not at.exception
    assert {"a@x.example", "b@y.example"} <= set(at.selectbox(key="audit_actor").options)
    assert {"beta-bio", "gamma-ai"} <= set(at.selectbox(key="audit_team").options)
    assert {"query.run", "request.submit"} <= set(at.selectbox(key="audit_action").options)
    assert at.selectbox(key="audit_decision").options == list(audit.DECISIONS)
    at.selectbox(key="audit_team").select("gamma-ai").run()
    at.selectbox(key="audit_decision").select("denied").run()
    frame = at.dataframe[0].value
    assert list(frame["actor"]) == ["a@x.example"]
    # details are readable fields, not JSON
    details = frame["details"][0]
    assert "limits › rows: 5000" in details and "tables: person, drug_exposure" in details
    assert "{" not in details
    event = at.dataframe[1].value.set_index("field")["value"]
    assert event["reason"] == "grant_revoked" and event["limits › seconds"] == "30"
    today = dt.datetime.now(dt.UTC).date()
    at.date_input(key="audit_dates").set_value((today, today)).run()
    assert list(at.dataframe[0].value["actor"]) == ["a@x.example"]
    tomorrow = today + dt.timedelta(days=1)
    at.date_input(key="audit_dates").set_value((tomorrow, tomorrow)).run()
    assert at.dataframe[0].value.empty


def test_audit_page_is_refused_to_a_member_and_the_refusal_audited(seeded):
    at = app("audit_log.py", claims(FOUNDER))
    at.run()
    assert [e.value.replace("\\", "").split(" — ")[0] for e in at.error] == ["staff_only"]
    assert audit.list_events(seeded.conn, action="ui.page", decision="denied")


def test_a_flagged_run_shows_its_singling_out_reasons_before_release(released):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from portal.identity import principal_for_email
    from portal.services import sandbox as services
    from tests.integration.sandbox.helpers import dev_training_data, need_isolation, run_queue
    from tests.unit.sandbox.factories import MODEL_CARD, sklearn_onnx

    need_isolation()
    X, y = dev_training_data(released, "wdbc-malignancy")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    # shift the intercept so that only about 4% of cases score 0.5 or more: a handful of
    # held-out rows beyond a reported threshold, which the singling-out check flags
    margin = np.quantile(model.decision_function(X), 0.96)
    model[-1].intercept_ = model[-1].intercept_ - margin
    member = principal_for_email(released.conn, "analyst@acme-health.example")
    run_id = services.submit(released, member, "wdbc-malignancy", sklearn_onnx(model, X.shape[1]),
                             MODEL_CARD)
    run_queue(released)
    staff = principal_for_email(released.conn, STAFF)
    status = services.run_status(released, staff, run_id)
    assert status["flagged"] and status["status"] == "awaiting_review"
    at = app("validation_runs.py", claims(STAFF))
    at.run()
    at.selectbox(key="vr_run").select(run_id).run()
    assert not at.exception
    called_out = [e.value for e in at.error if "flagged this run" in e.value]
    assert called_out and "singling" in called_out[0]
    checks = next(f.value for f in at.dataframe if "check" in f.value.columns)
    assert checks["result"][0] == "FLAGGED"
    assert status["singling_out"]["reasons"][0] in checks["detail"][0]
    at.button(key="vr_release").click().run()  # asks first: the flag needs a decision
    assert services.run_status(released, staff, run_id)["status"] == "awaiting_review"
    assert any("flagged it?" in w.value for w in at.warning)
    at.button(key="vr_release__yes").click().run()
    assert not at.exception
    assert services.run_status(released, staff, run_id)["status"] == "released"


def test_audit_grid_says_when_it_shows_only_the_newest_events(seeded):
    from portal.store.db import transaction

    with transaction(seeded.conn):
        for i in range(1001):
            audit.record(seeded.conn, actor="a@x.example", action="catalog.describe",
                         decision="allowed", details={"i": i})
    at = app("audit_log.py", claims(STAFF))
    at.run()
    assert len(at.dataframe[0].value) == 1000
    assert any("The grid shows the newest 1,000" in c.value for c in at.caption)

"""Catalog use cases: browse dataset cards and releases, build releases, check manifests.

Reading the catalog needs a signed-in principal (staff or an active startup member); only staff
see release file locations and may build. The catalog reads card.json and report.json (metadata
written by the builder), never the release's DuckDB files (ARCHITECTURE.md §6, property 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from portal import authz
from portal.catalog import builder
from portal.catalog.manifest import load_manifest, manifest_paths
from portal.catalog.releases import Release, current_release, list_releases
from portal.errors import ConfigError, NotFound
from portal.identity import Principal
from portal.services.attempts import use_case
from portal.services.context import Context


def _check_browse(ctx: Context, principal: Principal) -> None:
    """Staff, active members, and the operator (the CLI without --user, who holds the home)."""
    if not authz.is_operator(principal):
        authz.check_browse(ctx.conn, principal)


def _datasets_dir(ctx: Context):
    return ctx.settings.datasets_dir or ctx.settings.project_root / "datasets"


def _release_or_none(ctx: Context, dataset_id: str) -> Release | None:
    try:
        return current_release(ctx.conn, ctx.settings, dataset_id)
    except NotFound:
        return None


@use_case("catalog.list")
def list_datasets(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    """One summary per bundled dataset card: id, title, standard, current release version,
    persons and tables. Raises Denied for anonymous principals."""
    _check_browse(ctx, principal)
    out = []
    for dataset_id, path in manifest_paths(_datasets_dir(ctx)).items():
        release = _release_or_none(ctx, dataset_id)
        item: dict[str, Any] = {"id": dataset_id, "title": dataset_id, "standard": None,
                                "description": "", "release_version": None, "built_at": None,
                                "persons": None, "tables": None, "rows": None,
                                "status": "no_release"}
        if release is not None:
            card = release.card
            item.update(title=card.get("title", dataset_id), standard=card.get("standard"),
                        description=card.get("description", ""),
                        release_version=release.version, built_at=release.built_at,
                        persons=card.get("persons", {}).get("dev"), tables=len(release.tables),
                        rows=sum(t.dev_rows for t in release.tables.values()),
                        status="released")
        else:
            try:
                m = load_manifest(path).manifest
                item.update(title=m.title, standard=m.standard, description=m.description)
            except ConfigError:
                item["status"] = "invalid_card"
        out.append(item)
    return out


@use_case("catalog.describe", "dataset:{dataset_id}")
def describe_dataset(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any]:
    """The data card of a dataset: description, provenance, split rule, privacy settings, tables
    and columns with classifications and row counts, the current release and its
    de-identification report, and the small-cell-suppressed demographics. Staff also get
    ``release.path`` (dev partition) and ``release.holdout_path``. Raises Denied, NotFound."""
    _check_browse(ctx, principal)
    path = manifest_paths(_datasets_dir(ctx)).get(dataset_id)
    if path is None:
        raise NotFound("dataset_not_found", f"There is no dataset {dataset_id!r}.")
    release = _release_or_none(ctx, dataset_id)
    if release is None:
        return _card_without_release(load_manifest(path), dataset_id)
    card = release.card
    report = release.report()
    info: dict[str, Any] = {
        "version": release.version, "built_at": release.built_at,
        "persons": card.get("persons"), "manifest_sha256": card.get("manifest_sha256"),
        "history": [{"version": r["version"], "status": r["status"], "built_at": r["built_at"]}
                    for r in list_releases(ctx.conn, dataset_id)],
    }
    if authz.can_staff_or_operator(ctx.conn, principal):
        info["path"] = str(release.dev_path)
        info["holdout_path"] = str(release.holdout_path)
    tables = [{"name": name, **{k: v for k, v in spec.items()}}
              for name, spec in card["tables"].items()]
    return {
        "id": dataset_id, **{k: card.get(k) for k in (
            "title", "description", "standard", "terms", "provenance", "split", "privacy",
            "excluded_tables")},
        "release": info, "tables": tables, "report": report,
        "demographics": card.get("demographics", {"available": False}),
    }


def _card_without_release(loaded, dataset_id: str) -> dict[str, Any]:
    m = loaded.manifest
    tables = [{"name": t, "description": spec.description, "person_column": spec.person_column,
               "dev_rows": None, "holdout_rows": None,
               "columns": [{"name": n, "type": c.type, "classification": c.classification,
                            "description": c.description, "transform": c.transform}
                           for n, c in spec.columns.items() if c.transform != "drop"]}
              for t, spec in m.tables.items()]
    return {"id": dataset_id, "title": m.title, "description": m.description,
            "standard": m.standard, "terms": m.terms, "provenance": m.provenance.model_dump(),
            "split": m.split.model_dump(), "privacy": m.privacy.model_dump(),
            "excluded_tables": dict(m.source.exclude_tables), "release": None,
            "tables": tables, "report": None, "demographics": {"available": False}}


@use_case("catalog.demographics", "dataset:{dataset_id}")
def demographics(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any]:
    """Persons by age band and sex for the card's chart, counts below 11 suppressed (None).
    Computed by the builder from the release and stored on the card. Raises Denied, NotFound."""
    return describe_dataset(ctx, principal, dataset_id)["demographics"]


@use_case("release.build")
def build_releases(ctx: Context, principal: Principal, ids: Sequence[str] | None = None,
                   persons: int | None = None,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Build and publish a release of each dataset (all bundled cards when ``ids`` is empty).
    Staff only. Stops at the first failure (which leaves that dataset's previous release
    current). Raises Denied, NotFound, ConfigError, UserError(build_in_progress)."""
    authz.check_staff_or_operator(ctx.conn, principal)
    targets = list(ids or manifest_paths(_datasets_dir(ctx)))
    results = []
    for dataset_id in targets:
        result = builder.build_release(ctx.settings, ctx.conn, dataset_id, actor=principal.actor,
                                       persons=persons, progress=progress)
        results.append({"dataset": result.dataset_id, "version": result.version,
                        "rows": result.rows, "seconds": round(result.seconds, 2),
                        "persons": result.report["persons"], "passed": result.report["passed"]})
    return results


def check_manifests(ctx: Context, ids: Sequence[str] | None = None,
                    with_sources: bool = True) -> list[dict[str, Any]]:
    """Run the strict loader on each card and compare it with its source. Returns one entry per
    dataset: ``{"id", "ok", "problems"}`` (problems name file:line, table and column)."""
    paths = manifest_paths(_datasets_dir(ctx))
    out = []
    for dataset_id in ids or list(paths):
        if dataset_id not in paths:
            out.append({"id": dataset_id, "ok": False, "problems": ["no such dataset card"]})
            continue
        try:
            loaded = load_manifest(paths[dataset_id])
            if with_sources:
                builder.check_source(ctx.settings, loaded)
            out.append({"id": dataset_id, "ok": True, "problems": []})
        except ConfigError as exc:
            out.append({"id": dataset_id, "ok": False, "problems": exc.problems})
    return out


def report_summary(report: dict[str, Any]) -> str:
    """The readable summary of a de-identification report (as in report.md)."""
    from portal.catalog.report import summary_lines

    return "\n".join(summary_lines(report))


"""The differential-privacy ledger on both store engines: arithmetic, cached replay at no cost,
exhaustion, refunds, budget shared by releases, and two connections racing for the budget."""

from __future__ import annotations

import threading

import pytest

from portal.errors import QuotaExceeded, Rejected
from portal.store import dp_ledger
from portal.store.db import connect
from tests.store_engines import ENGINES

BUDGET = {"budget_rho": 5.0, "budget_delta": 5e-7}


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _charge(conn, key: str, rho: float = 0.5, delta: float = 0.0, team: str = "acme",
            release: str = "1", dataset: str = "eunomia"):
    return dp_ledger.charge(conn, team=team, dataset_id=dataset, release_version=release,
                            tier="aggregate", query_key=key, query_id=f"q-{key}", rho=rho,
                            delta=delta, **BUDGET)


def test_charges_add_up_per_team_and_dataset(ctx):
    for i in range(3):
        assert _charge(ctx.conn, f"k{i}", delta=1e-9).cost_rho == 0.5
    _charge(ctx.conn, "other-team", team="gamma")
    _charge(ctx.conn, "other-dataset", dataset="omop_synth")
    spent = dp_ledger.spent(ctx.conn, "acme", "eunomia")
    assert spent.rho == pytest.approx(1.5) and spent.delta == pytest.approx(3e-9)
    assert spent.queries == 3
    assert dp_ledger.spent(ctx.conn, "gamma", "eunomia").rho == pytest.approx(0.5)


def test_an_identical_query_replays_its_answer_at_no_cost(ctx):
    _charge(ctx.conn, "same")
    with pytest.raises(Rejected) as info:  # still running: no second charge, no answer yet
        _charge(ctx.conn, "same")
    assert info.value.code == "query_in_progress"
    dp_ledger.record_answer(ctx.conn, "acme", "eunomia", "same", {"rows": [[101]]})
    replay = _charge(ctx.conn, "same")
    assert (replay.cost_rho, replay.cached) == (0.0, {"rows": [[101]]})
    assert dp_ledger.spent(ctx.conn, "acme", "eunomia").rho == pytest.approx(0.5)
    assert dp_ledger.is_answered(ctx.conn, "acme", "eunomia", "same")


def test_the_budget_is_exhausted_exactly_at_its_limit(ctx):
    for i in range(10):
        _charge(ctx.conn, f"k{i}")
    with pytest.raises(QuotaExceeded) as info:
        _charge(ctx.conn, "one-too-many")
    assert info.value.code == "privacy_budget_exhausted"
    assert "ρ = 0 of 5 is left" in info.value.message
    assert dp_ledger.spent(ctx.conn, "acme", "eunomia").queries == 10  # nothing written


def test_the_selection_delta_is_budgeted_too(ctx):
    _charge(ctx.conn, "a", rho=0.1, delta=4e-7)
    with pytest.raises(QuotaExceeded):
        _charge(ctx.conn, "b", rho=0.1, delta=2e-7)


def test_a_new_release_does_not_refresh_the_budget(ctx):
    for i in range(10):
        _charge(ctx.conn, f"v1-{i}", release="1")
    with pytest.raises(QuotaExceeded):
        _charge(ctx.conn, "v2-0", release="2")


def test_failures_that_read_nothing_are_refunded_and_others_stay_charged(ctx):
    _charge(ctx.conn, "busy")
    dp_ledger.record_failure(ctx.conn, "acme", "eunomia", "busy", "server_busy")
    _charge(ctx.conn, "broke")
    dp_ledger.record_failure(ctx.conn, "acme", "eunomia", "broke", "query_error")
    assert dp_ledger.spent(ctx.conn, "acme", "eunomia").rho == pytest.approx(0.5)
    assert _charge(ctx.conn, "broke").cached == {"failed": "query_error"}
    assert _charge(ctx.conn, "busy").cost_rho == 0.5  # charged anew: it never ran


def test_epsilon_statement():
    assert dp_ledger.epsilon(0.0, 1e-6) == 0.0
    # ρ + 2√(ρ ln 1/δ) at ρ = 0.5, δ = 1e-6
    assert dp_ledger.epsilon(0.5, 1e-6) == pytest.approx(5.7565, abs=1e-3)


def test_two_connections_racing_cannot_overspend(ctx):
    """Two portal servers (two store connections), 12 distinct queries each, against a budget
    of 10: exactly 10 charges land, whatever the interleaving."""
    target = ctx.settings.database_url or ctx.settings.store_target
    barrier = threading.Barrier(2)
    outcomes: dict[str, list[str]] = {"a": [], "b": []}

    def server(name: str) -> None:
        conn = connect(target, ctx.settings)
        try:
            barrier.wait()
            for i in range(12):
                try:
                    _charge(conn, f"{name}-{i}")
                    outcomes[name].append("charged")
                except QuotaExceeded:
                    outcomes[name].append("refused")
        finally:
            conn.close()

    threads = [threading.Thread(target=server, args=(n,)) for n in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    charged = outcomes["a"].count("charged") + outcomes["b"].count("charged")
    assert charged == 10
    assert len(outcomes["a"]) == len(outcomes["b"]) == 12
    assert dp_ledger.spent(ctx.conn, "acme", "eunomia").rho == pytest.approx(5.0)

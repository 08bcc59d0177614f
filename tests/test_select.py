"""Training-data selection: exact budgets, floors, every registered strategy, the sklearn contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prunelab
from prunelab.data.workloads import make_store
from prunelab.errors import UserError
from prunelab.select import (
    ClusterSelector,
    CondenseSelector,
    Reservoir,
    allocate,
    apply_floors,
    get_selector,
    list_strategies,
    requested_count,
)

STRATEGIES = list_strategies()


def blobs(n: int = 600, d: int = 5, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    centres = rng.normal(0, 4, size=(classes, d))
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


# --- budget -----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.data())
def test_allocate_is_exact_and_bounded(sizes: list[int], data: st.DataObject) -> None:
    sizes_a = np.array(sizes)
    lower = data.draw(st.integers(0, 2))
    floor_need = int(np.minimum(sizes_a, lower).sum())
    total = data.draw(st.integers(floor_need, int(sizes_a.sum())))
    q = allocate(sizes_a, total, lower=lower)
    assert q.sum() == total
    assert (q <= sizes_a).all() and (q >= np.minimum(sizes_a, lower)).all()


def test_allocate_largest_remainder() -> None:
    # 10 * (5, 3, 2) / 10 exact; 7 of (5, 3, 2): ideal 3.5, 2.1, 1.4 -> floors 3, 2, 1, leftover to 3.5
    assert allocate(np.array([5, 3, 2]), 7).tolist() == [4, 2, 1]
    assert allocate(np.array([100, 1, 1]), 3, lower=1).tolist() == [1, 1, 1]


def test_requested_count_and_floors() -> None:
    assert requested_count(1000, keep=0.3) == 300
    assert requested_count(7, keep=0.5) == 4  # half up
    assert requested_count(10, keep_count=25) == 10
    count, floors = apply_floors(5, 100, 20)
    assert count == 20 and floors[0].name == "min_keep" and floors[0].before == 5
    count, floors = apply_floors(3, 12, 20)
    assert count == 12 and "fewer than min_keep" in floors[0].reason
    count, floors = apply_floors(25, 1000, 1, n_classes=30)
    assert count == 30 and floors[0].name == "classes"
    assert apply_floors(300, 1000, 20, n_classes=3) == (300, [])


# --- every strategy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exact_count_classification(strategy: str) -> None:
    X, y = blobs()
    sel = prunelab.select(X, y, keep=0.3, strategy=strategy)
    assert len(sel.indices) == 180 == sel.report.kept_count == sel.report.requested_count
    assert not sel.report.floors
    assert np.all(np.diff(sel.indices) > 0) and sel.indices.max() < len(X)
    assert sel.scores.shape == (len(X),) and np.isfinite(sel.scores).all()
    per_class = np.bincount(y[sel.indices], minlength=3)
    # stratified: each class keeps its share to within one sample
    assert np.all(np.abs(per_class - 0.3 * np.bincount(y)) <= 1)
    rep = sel.report
    assert rep.bytes_before == X.nbytes + y.nbytes
    assert rep.bytes_after == X[sel.indices].nbytes + y[sel.indices].nbytes
    assert rep.peak_bytes > 0 and rep.seconds > 0
    assert sum(s["kept"] for s in rep.strata) == 180


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("target", ["regression-1d", "regression-2d", "none"])
def test_regression_and_unlabelled(strategy: str, target: str) -> None:
    X, _ = blobs(400)
    rng = np.random.default_rng(1)
    y = {"regression-1d": X[:, 0] * 2 + rng.normal(size=400),
         "regression-2d": np.column_stack([X[:, 0], X[:, 1] ** 2]), "none": None}[target]
    sel = prunelab.select(X, y, keep_count=97, strategy=strategy)
    assert len(sel.indices) == 97 and len(np.unique(sel.indices)) == 97
    assert sel.report.task == ("none" if y is None else "regression")
    if y is not None:
        assert len(sel.report.strata) > 1  # target quantile strata


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_homogeneous_store_floors(strategy: str) -> None:
    data = make_store("homogeneous", 100, seed=0)
    y = data.y_class.copy()
    y[7] = 6  # a class with a single sample must survive
    sel = prunelab.select(data.X, y, keep=0.05, strategy=strategy)
    assert len(sel.indices) >= 20
    assert set(np.unique(y[sel.indices])) == set(np.unique(y))
    assert 7 in sel.indices
    if strategy != "auto":
        assert len(sel.indices) == 20
        assert [f.name for f in sel.report.floors] == ["min_keep"]


def test_fewer_samples_than_min_keep_keeps_all() -> None:
    X, y = blobs(12)
    sel = prunelab.select(X, y, keep=0.5, strategy="cluster")
    assert len(sel.indices) == 12 and sel.report.floors[0].after == 12


def test_class_floor_raises_count() -> None:
    X, _ = blobs(300)
    y = np.arange(300) % 30
    sel = prunelab.select(X, y, keep_count=10, min_keep=1, strategy="random")
    assert len(sel.indices) == 30 and sel.report.floors[0].name == "classes"
    assert len(np.unique(y[sel.indices])) == 30


# --- auto: measured, not constants -----------------------------------------------------------------


def repeats_store(seed: int, workloads: int = 12, repeats: int = 50, d: int = 4) -> tuple[np.ndarray, ...]:
    """A run history made here (not by prunelab's generators): `workloads` jittered points, each
    recorded `repeats` times, labels from a linear rule with 10% of runs flipped at random."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(workloads, d)) * 3
    labels = (centres @ rng.normal(size=(d, 3))).argmax(1)
    w = np.repeat(np.arange(workloads), repeats)
    X = centres[w] + rng.normal(0, 0.05, size=(len(w), d))
    y = labels[w].copy()
    flip = rng.random(len(w)) < 0.1
    y[flip] = rng.integers(0, 3, int(flip.sum()))
    return X, y, w


def independent_store(seed: int, n: int = 400, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Independent rows, each seen once, labels from a linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X @ rng.normal(size=(d, 3))).argmax(1)


FAST = {"strategies": ("random", "cluster", "condense"), "repeats": 1}  # 3 strategies x 3 folds


def test_auto_prunes_heavy_repeats_to_a_small_fraction() -> None:
    X, y, w = repeats_store(3)
    # two repeats of 3 folds: with 3 splits the t quantile (2.9) makes every bound too wide
    sel = prunelab.select(X, y, random_state=3, **{**FAST, "repeats": 2})
    d = sel.report.decisions
    assert sel.report.strategy == f"auto:{d['strategy']}" and d["strategy"] in FAST["strategies"]
    assert d["keep"] <= 0.2 and sel.report.memory_saving >= 0.8, d["reason"]
    assert "within 0.01" in d["reason"]
    search = d["search"]
    assert search["groups"] == 12 and search["largest_group"] == 50  # the workloads, found from X alone
    assert search["metric"] == "accuracy" and "KNeighborsClassifier" in search["estimator"]
    # every (strategy, fraction) it measured is in the table, each with its folds, down to the first failure
    fractions = sorted({c["fraction"] for c in search["table"]}, reverse=True)
    assert fractions[: fractions.index(d["keep"]) + 1] == [0.7, 0.5, 0.3, 0.2, 0.1][: fractions.index(d["keep"]) + 1]
    assert len(search["table"]) == 3 * len(fractions)
    assert all(c["folds"] == 6 == search["full"]["folds"] for c in search["table"])
    chosen = [c for c in search["table"] if c["fraction"] == d["keep"] and c["strategy"] == d["strategy"]]
    assert chosen and chosen[0]["vs_full"] - chosen[0]["vs_full_se"] >= -0.01
    assert search["cost"]["selector_fits"] == 6 * len(search["table"]) and search["cost"]["seconds"] > 0
    assert search["settings"]["holdout"] == "mixed" and "unseen groups and repeats of known ones" in d["reason"]


def test_auto_keeps_independent_rows() -> None:
    X, y = independent_store(4)
    sel = prunelab.select(X, y, random_state=4, **FAST)
    assert sel.report.kept_count >= 0.7 * len(X), sel.report.decisions["reason"]


@pytest.mark.parametrize("columns", [1, 2])
def test_auto_on_a_regression_target(columns: int) -> None:
    X, _, w = repeats_store(5)
    rng = np.random.default_rng(5)
    per_workload = rng.normal(size=(12, 2))  # e.g. log2 n_jobs and log2 chunksize of each workload
    y = per_workload[w] + 0.1 * rng.normal(size=(len(w), 2))
    y = y[:, 0] if columns == 1 else y
    # targets drawn per workload at random: an unseen workload cannot be predicted, so this
    # scores repeats only (holdout="rows"); the default mixed hold-out would weigh in the noise
    sel = prunelab.select(X, y, random_state=5, holdout="rows", **FAST)
    d = sel.report.decisions
    assert sel.report.task == "regression" and d["search"]["metric"] == "r2"
    assert "KNeighborsRegressor" in d["search"]["estimator"]
    assert d["keep"] <= 0.5 and d["search"]["full"]["mean"] > 0.9, d["reason"]  # 3 folds: a wide bound


def test_auto_with_a_budget_picks_only_the_strategy() -> None:
    X, y, _ = repeats_store(6)
    sel = prunelab.select(X, y, keep=0.3, random_state=6, **FAST)
    d = sel.report.decisions
    assert len(sel) == 180 and d["keep"] == 0.3
    table = d["search"]["table"]
    assert {c["fraction"] for c in table} == {0.3} and {c["strategy"] for c in table} == set(FAST["strategies"])
    assert "at the requested 30%" in d["reason"]
    # with a budget: the best mean held-out score, random included
    assert d["strategy"] == max(table, key=lambda c: c["mean"])["strategy"]
    assert "the best mean held-out score" in d["reason"]
    sel = prunelab.select(X, y, keep_count=100, random_state=6, **FAST)
    assert len(sel) == 100 and {c["fraction"] for c in sel.report.decisions["search"]["table"]} == {100 / 600}


def test_auto_on_labels_unrelated_to_features_keeps_everything() -> None:
    # nothing to learn: no fraction can be shown to lose less than 1 pp, so the fail-safe answer
    # is everything; with a budget only the strategy is chosen (the best mean, whichever it is)
    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(600, 4)), rng.integers(0, 3, 600)
    at30 = prunelab.select(X, y, keep=0.3, random_state=12, repeats=2, strategies=("cluster", "condense"))
    d = at30.report.decisions
    assert len(at30) == 180 and d["strategy"] == max(d["search"]["table"], key=lambda c: c["mean"])["strategy"]
    free = prunelab.select(X, y, random_state=12, repeats=2, strategies=("cluster", "condense"))
    assert len(free) == 600 and free.report.decisions["reason"].startswith("kept everything")


def test_auto_measures_random_even_when_not_asked_for() -> None:
    X, y, _ = repeats_store(6)
    sel = prunelab.select(X, y, keep=0.3, random_state=6, strategies=("condense",), repeats=1)
    assert {c["strategy"] for c in sel.report.decisions["search"]["table"]} == {"random", "condense"}


def test_auto_respects_its_time_budget() -> None:
    X, y = independent_store(7, n=3000)
    sel = prunelab.select(X, y, random_state=7, max_seconds=0.5)
    cost = sel.report.decisions["search"]["cost"]
    assert cost["stopped_by_time_budget"] and "time budget" in sel.report.decisions["reason"]
    # checked before every fit: at most one fit (well under a second here) past the budget
    assert cost["seconds"] < 0.5 + 2.0
    assert sel.report.kept_count == 3000  # nothing measured below the full store: keep everything


def test_auto_subsamples_big_stores_and_takes_any_estimator() -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y, _ = repeats_store(8)
    sel = prunelab.select(X, y, max_rows=200, estimator=DecisionTreeClassifier(random_state=0), random_state=8,
                          **FAST)
    search = sel.report.decisions["search"]
    assert search["rows"] == 200 and "DecisionTreeClassifier" in search["estimator"]
    assert search["metric"] == "DecisionTreeClassifier.score"
    sel = prunelab.select(X, y, scoring="balanced_accuracy", holdout="groups", random_state=8, **FAST)
    assert sel.report.decisions["search"]["metric"] == "balanced_accuracy"
    assert "whole groups" in sel.report.decisions["reason"]


def test_grouped_splits_never_put_a_group_on_both_sides() -> None:
    from prunelab.select.search import grouped_splits, workload_groups

    X, y, w = repeats_store(9, workloads=20, repeats=10)
    groups = workload_groups(X.astype(np.float32) / X.std(0), 0.1, seed=0)
    assert len(np.unique(groups)) == 20
    splits = grouped_splits(y, groups, folds=3, repeats=2, seed=0)
    assert len(splits) == 6
    for train, test in splits:
        assert not set(w[train]) & set(w[test])
        assert len(train) + len(test) == len(X)


def test_paired_standard_error_is_corrected_for_overlapping_training_parts() -> None:
    from prunelab.select.search import critical, paired

    d = np.array([0.01, 0.03, 0.02, 0.02])
    mean, se = paired(d, held_out_ratio=0.5)
    assert mean == pytest.approx(0.02)
    # Nadeau & Bengio: sd * sqrt(1/J + n_test/n_train), larger than the naive sd / sqrt(J)
    assert se == pytest.approx(np.std(d, ddof=1) * np.sqrt(0.25 + 0.5))
    assert se > np.std(d, ddof=1) / 2
    assert paired(d[:1], 0.5)[1] == float("inf")
    assert critical(0.05, 6) == pytest.approx(2.015, abs=1e-3) and critical(0.05, 1) == float("inf")


def test_decide_takes_the_best_mean_and_keeps_more_when_unsure() -> None:
    from prunelab.select.search import Cell, SearchSettings, best, decide, pick

    settings = SearchSettings(fractions=(0.5, 0.3, 0.1), strategies=("random", "condense"))
    full = [0.80, 0.82, 0.81, 0.80]
    grid = [0.5, 0.3, 0.1]
    cells = [Cell("random", 0.5, (0.80, 0.82, 0.80, 0.80)), Cell("condense", 0.5, (0.80, 0.82, 0.81, 0.80)),
             Cell("random", 0.3, (0.70, 0.72, 0.71, 0.70)), Cell("condense", 0.3, (0.75, 0.76, 0.74, 0.75)),
             Cell("random", 0.1, (0.80, 0.82, 0.81, 0.80)), Cell("condense", 0.1, (0.70, 0.70, 0.70, 0.70))]
    # pick (the walk's former rule, kept for the comparisons): at 50% condense is 0.25 pp above
    # random on one fold: noise, so random
    p = pick(cells[:2], 0.05, 0.5)
    assert p is not None and p.cell.strategy == "random" and p.runner is not None
    # at 30% condense beats random by 4.25 pp on every fold: beyond the noise
    p = pick(cells[2:4], 0.05, 0.5)
    assert p is not None and p.cell.strategy == "condense" and p.gain == pytest.approx(0.0425)
    # the walk takes the best mean at each fraction: condense at 50% (0.25 pp over random)
    strategy, fraction, reason = decide(full, cells, [0.5], grid, None, settings, "accuracy")
    assert (strategy, fraction) == ("condense", 0.5) and "kept 50%" in reason and "at 30% (condense)" in reason
    # a fraction the time budget cut short is not a failure, and the reason says so
    strategy, fraction, reason = decide(full, cells[:3], [0.5], grid, None, settings, "accuracy", complete={0.5})
    assert (strategy, fraction) == ("condense", 0.5) and "30% was not measured for every strategy" in reason
    # a budget: only the strategy at that fraction, the best mean (random included, ties to random)
    strategy, fraction, reason = decide(full, cells[2:4], [], [0.3], 0.3, settings, "accuracy")
    assert (strategy, fraction) == ("condense", 0.3) and "best mean held-out score (+0.0425" in reason
    strategy, _, reason = decide(full, cells[:2], [], [0.5], 0.5, settings, "accuracy")
    assert strategy == "condense" and "(+0.0025" in reason  # 0.25 pp on one fold: still the best mean
    strategy, _, reason = decide(full, cells[4:6], [], [0.1], 0.1, settings, "accuracy")
    assert strategy == "random" and "next condense -0.1075" in reason
    tie = [Cell("condense", 0.3, (0.7, 0.8)), Cell("random", 0.3, (0.8, 0.7))]
    tied = best(tie, 0.5)
    assert tied is not None and tied.cell.strategy == "random"  # equal means: the baseline
    # nothing within tolerance at the largest fraction: keep everything, in one sentence
    strategy, fraction, reason = decide(full, cells[2:4], [], [0.3], None, settings, "accuracy")
    assert strategy is None and fraction == 1.0 and reason.startswith("kept everything") and reason.count(". ") == 0


@pytest.mark.parametrize("kind", ["classifier", "regressor", "regressor-2"])
def test_unit_contributions_average_to_scikit_learns_score(kind: str) -> None:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    from prunelab.select.search import fit_score, per_group

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = ((X[:, 0] > 0).astype(int) + (X[:, 1] > 1) if kind == "classifier"
         else X[:, 0] * 2 + rng.normal(size=300) if kind == "regressor" else np.c_[X[:, 0], X[:, 2] ** 2])
    est = KNeighborsClassifier(5) if kind == "classifier" else KNeighborsRegressor(5)
    groups = rng.integers(0, 40, 300)
    held = np.arange(200, 300)
    parts = ((held[:50], per_group(groups[held[:50]])), (held[50:], None))
    score, units = fit_score(est, X, y, np.arange(200), parts, None, groups)
    reference, none = fit_score(est, X, y, np.arange(200), parts, None)  # estimator.score per part
    assert none is None and units is not None
    assert score == pytest.approx(reference, abs=1e-12)
    # the weighted part's units are its groups (each once), the unweighted part's its rows
    assert sorted(units[0][0]) == sorted(set(groups[held[:50]])) and list(units[1][0]) == list(held[50:])
    # a scorer given by the user is not decomposed: no units, the score as the scorer gives it
    from sklearn.metrics import check_scoring

    scorer = check_scoring(est, scoring="accuracy" if kind == "classifier" else "r2")
    assert fit_score(est, X, y, np.arange(200), parts, scorer, groups)[1] is None


def test_snapped_scoring_is_the_best_config_share_of_a_run_history() -> None:
    from sklearn.neighbors import KNeighborsRegressor

    from prunelab.data.histories import config_accuracy, make_history
    from prunelab.select.search import fit_score, snap
    from prunelab.validate.families import history_spec

    assert list(snap(np.array([0.4, 0.5, 0.6, -3.0, 9.0]), np.array([0.0, 1.0, 1.0, 2.0]))) == [0, 0, 1, 0, 2]
    d = make_history(history_spec("zipf-log"), n=600, seed=3, test_size=200)
    X, y = np.r_[d.X, d.X_test], np.r_[d.y_reg, d.y_test_reg]
    train, held = np.arange(600), np.arange(600, 800)
    est = KNeighborsRegressor(5).fit(d.X, d.y_reg)
    score, units = fit_score(KNeighborsRegressor(5), X, y, train, ((held, None),), None, np.arange(800), snapped=True)
    # the training part holds every value of the grid the test targets use: snapping to it is snapping to the grid
    assert set(np.unique(d.y_test_reg[:, 0])) <= set(np.unique(d.y_reg[:, 0]))
    assert score == pytest.approx(config_accuracy(est.predict(d.X_test), d.y_test_reg), abs=1e-12)
    assert units is not None and len(units[0][0]) == 200
    sel = prunelab.select(d.X, d.y_reg, keep=0.3, scoring="snapped_accuracy", random_state=0, **FAST)
    assert sel.report.decisions["search"]["metric"] == "snapped_accuracy"
    with pytest.raises(UserError, match="regression"):
        prunelab.select(d.X, d.y_class, keep=0.3, scoring="snapped_accuracy", **FAST)
    with pytest.raises(UserError, match="unknown scoring"):
        prunelab.select(d.X, d.y_reg, keep=0.3, scoring="r3", **FAST)


def test_pooled_loss_pairs_units_and_counts_a_repeated_unit_once() -> None:
    from prunelab.select.search import Cell, pooled_loss

    ids = np.arange(100)
    rng = np.random.default_rng(1)
    full_c = rng.random(100)
    # two splits that hold out the same 100 units (two repeats): the loss is 1 pp on every unit
    full = ((ids, full_c),), ((ids, full_c),)
    sub = ((ids, full_c - 0.01),), ((ids, full_c - 0.01),)
    mean, se, n = pooled_loss(full, sub)
    assert mean == pytest.approx(0.01) and se == pytest.approx(0.0, abs=1e-12) and n == 100
    # noisy per-unit losses: se = sd / sqrt(units), units counted once however often held out
    noise = rng.normal(0, 0.1, 100)
    sub = ((ids, full_c - noise),), ((ids, full_c - noise),)
    mean, se, n = pooled_loss(full, sub)
    assert mean == pytest.approx(noise.mean()) and se == pytest.approx(noise.std(ddof=1) / 10) and n == 100
    # two part kinds weigh equally; the bound of a Cell uses the units when both sides have them
    full2 = ((ids, full_c), (ids + 1000, full_c)),
    sub2 = ((ids, full_c - 0.02), (ids + 1000, full_c)),
    assert pooled_loss(full2, sub2)[0] == pytest.approx(0.01)
    cell = Cell("random", 0.3, (0.5,), units=sub2)
    assert cell.loss_bound((0.51,), 0.5, 0.05, full2) == pytest.approx(0.01)
    assert cell.loss((0.51,), 0.5)[2] == 1  # without the full store's units: per split


def test_loss_bound_is_conservative() -> None:
    from prunelab.select.search import Cell

    full = (0.80, 0.82, 0.81, 0.80, 0.81, 0.82)
    # a mean loss of 0.5 pp that varies a lot between folds: the 95% bound exceeds 1 pp
    noisy = Cell("random", 0.3, (0.81, 0.80, 0.82, 0.77, 0.80, 0.81))
    assert np.mean(np.subtract(full, noisy.scores)) < 0.01 < noisy.loss_bound(full, 0.5, 0.05)
    steady = Cell("random", 0.3, tuple(f - 0.005 for f in full))
    assert steady.loss_bound(full, 0.5, 0.05) == pytest.approx(0.005)


def test_mixed_holdout_holds_out_unseen_groups_and_repeats_of_known_ones() -> None:
    from prunelab.select.search import mixed_splits

    X, y, w = repeats_store(9, workloads=24, repeats=10)
    splits = mixed_splits(y, w, folds=3, repeats=2, seed=0)
    assert len(splits) == 6
    for train, ((unseen, weights), (known, known_weights)) in splits:
        assert not set(w[train]) & set(w[unseen])  # workloads never seen in training
        # every unseen workload counts once, whatever its rows; known rows count one each
        assert np.allclose(np.bincount(w[unseen], weights=weights)[np.unique(w[unseen])], 1.0)
        assert known_weights is None
        assert set(w[known]) <= set(w[train])  # every known row keeps a row of its workload in training
        assert len(known) == len(unseen) and not set(known) & set(unseen)
        assert len(train) + len(unseen) + len(known) == len(X)
    # a store without repeats has only the unseen part
    once = mixed_splits(y, np.arange(len(y)), folds=3, repeats=1, seed=0)
    assert once and all(len(parts) == 1 for _, parts in once)


def test_auto_without_labels_or_rows_to_hold_out_keeps_everything() -> None:
    X, _, _ = repeats_store(10)
    sel = prunelab.select(X)
    assert sel.report.kept_count == len(X) and "no labels" in sel.report.decisions["reason"]
    sel = prunelab.select(X, keep=0.25)
    assert len(sel) == 150 and sel.report.strategy == "auto:random"
    one = prunelab.select(X[:1], np.array([1]))
    assert len(one) == 1
    X, y, _ = repeats_store(11, repeats=8)  # 96 rows: one held-out row is more than 1 pp
    sel = prunelab.select(X, y)
    assert len(sel) == 96 and "fewer than 1 / tolerance = 100" in sel.report.decisions["reason"]
    assert sel.report.decisions["search"]["cost"]["selector_fits"] == 0
    assert prunelab.select(X, y, tolerance=0.05, **FAST).report.decisions["search"]["cost"]["selector_fits"] > 0


def test_condense_matches_imblearn_enn_edits() -> None:
    from imblearn.under_sampling import EditedNearestNeighbours

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.7 * rng.normal(size=400) > 0).astype(int)
    X = (X - X.mean(0)) / X.std(0)  # already standardized: same neighbours as ours
    enn = EditedNearestNeighbours(n_neighbors=3, kind_sel="mode", sampling_strategy="all")
    enn.fit_resample(X, y)
    kept_by_enn = set(enn.sample_indices_.tolist())
    sel = CondenseSelector(keep=1.0, n_neighbors=3).fit(X, y)
    ours_clean = set(np.flatnonzero(sel.condense_score_ >= 1.0).tolist())
    assert ours_clean == kept_by_enn



@pytest.mark.parametrize("task", ["classification", "regression"])
def test_condense_run_history_keeps_group_consensus_balanced(task: str) -> None:
    # repeated runs of few workloads with noisy labels: each workload keeps its share of a budget
    # balanced over workloads (not over noisy label strata), and the kept labels are its consensus
    data = make_store("history", 200, seed=0, test_size=10)
    y = data.y_class if task == "classification" else data.y_reg
    sel = CondenseSelector(keep=0.25, task=task).fit(data.X, y)
    assert len(sel.indices_) == 50
    groups, clean = sel.groups_, sel.condense_score_ >= 1.0  # near-duplicate groups, consensus samples
    assert len(np.unique(groups)) == len(np.unique(data.groups))  # found the workloads from X alone
    sizes = np.bincount(groups[clean], minlength=groups.max() + 1)
    kept = np.bincount(groups[sel.indices_], minlength=len(sizes))
    # water-filling over workloads: min(consensus size, level); the level varies by at most one
    # sample (rounding) plus one reserved class-floor sample
    level = kept[kept < sizes]
    assert len(level) and level.max() - level.min() <= 2
    assert np.all(kept >= np.minimum(sizes, level.min()))
    if task == "classification":
        assert set(np.unique(data.y_class[sel.indices_])) == set(np.unique(data.y_class))  # class floor
        minority = 0  # kept samples whose label is not their workload's most frequent one
        for g in np.unique(groups):
            counts = np.bincount(data.y_class[groups == g])
            kept_labels = data.y_class[sel.indices_[groups[sel.indices_] == g]]
            minority += int(np.sum(counts[kept_labels] < counts.max()))
        assert minority <= len(np.unique(data.y_class))  # only the reserved one-per-class floor
    else:
        assert np.mean(sel.condense_score_[sel.indices_] >= 1.0) > 0.9  # consensus targets kept


def test_no_dense_matrix_at_twelve_thousand() -> None:
    X, y = blobs(12_000, d=8)
    for strategy in ("cluster", "diversity", "condense", "prototype", "importance"):
        sel = prunelab.select(X, y, keep=0.3, strategy=strategy)
        # a dense 12k x 12k float32 matrix would be 576 MB; stay over an order of magnitude below
        assert sel.report.peak_bytes < 24 * 2**20, (strategy, sel.report.peak_bytes)


# --- sklearn / imblearn contract ------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sklearn_contract(strategy: str) -> None:
    from sklearn.base import clone

    sel = get_selector(strategy, keep=0.5, random_state=3)
    if strategy == "auto":
        sel.set_params(repeats=1)  # one pass of 3 folds: the contract, not the search, is tested here
    params = sel.get_params()
    assert params["keep"] == 0.5 and params["random_state"] == 3
    assert not hasattr(sel, "indices_")
    twin = clone(sel)
    assert twin.get_params() == params
    X, y = blobs(200)
    assert sel.fit(X, y) is sel
    Xr, yr = sel.fit_resample(X, y)
    assert len(Xr) == len(yr) == 100 and sel.get_support().sum() == 100
    np.testing.assert_array_equal(Xr, X[sel.indices_])
    again = clone(sel).fit(X, y)
    np.testing.assert_array_equal(again.indices_, sel.indices_)  # random_state makes it repeatable
    with pytest.raises(ValueError):
        sel.set_params(nope=1)


def test_imblearn_pipeline() -> None:
    from imblearn.pipeline import make_pipeline
    from sklearn.neighbors import KNeighborsClassifier

    X, y = blobs(600)
    pipe = make_pipeline(ClusterSelector(keep=0.3), KNeighborsClassifier())
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert len(pipe.steps[0][1].indices_) == 180


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, fragment", [
    ({"X": np.array([[1.0, np.nan]] * 30)}, "nan or inf"),
    ({"X": np.array([[1.0, np.inf]] * 30)}, "nan or inf"),
    ({"X": np.zeros((0, 3))}, "empty"),
    ({"y": np.zeros(5)}, "same length"),
    ({"keep": 0.0}, "'keep' parameter"),
    ({"keep": 1.5}, "'keep' parameter"),
    ({"keep": -0.1}, "'keep' parameter"),
    ({"keep": 0.3, "tolerance": -1}, "'tolerance' parameter"),
    ({"min_keep": 0}, "min_keep"),
    ({"strategy": "magic"}, "unknown strategy"),
    ({"keep": 0.3, "keep_count": 5}, "not both"),
    ({"keep": 0.3, "keep_count": 5, "strategy": "cluster"}, "not both"),
    ({"task": "clustering"}, "'task' parameter"),
])
def test_bad_input_raises_user_error(kwargs: dict, fragment: str) -> None:
    X, y = blobs(30)
    args = {"X": X, "y": y, **kwargs}
    with pytest.raises(ValueError) as info:
        prunelab.select(args.pop("X"), args.pop("y"), **args)
    assert isinstance(info.value, UserError)
    assert fragment in str(info.value).lower()


# --- reservoir --------------------------------------------------------------------------------------------


def test_reservoir_stays_under_cap_and_prefers_recent() -> None:
    X, y = blobs(3000, seed=5)
    res = Reservoir(cap=300, strategy="importance", headroom=0.25)
    for i in range(0, 3000, 100):
        res.add(X[i : i + 100], y[i : i + 100], timestamps=np.arange(i, i + 100, dtype=float))
        assert len(res) <= 300
    assert res.seen == 3000 and len(res.X) == len(res.y) == len(res.ids) == len(res)
    np.testing.assert_array_equal(res.X, X[res.ids])
    assert set(np.unique(res.y)) == {0, 1, 2}
    assert np.median(res.ids) > 1500  # recency: the store leans to recent arrivals
    # compactions scan the store (<= cap + a batch), never the whole history
    assert res.compactions <= 3000 / (0.25 * 300) + 1
    assert res.scanned <= res.compactions * (300 + 100)
    with pytest.raises(UserError):
        res.add(X[:5, :2], y[:5], timestamps=np.zeros(5))
    with pytest.raises(UserError):
        Reservoir(cap=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 150), classes=st.integers(1, 6), keep=st.floats(0.01, 1.0), min_keep=st.integers(1, 40),
       strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 3))
def test_count_is_exact_or_floored(n: int, classes: int, keep: float, min_keep: int, strategy: str,
                                   seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    cheap = {"repeats": 1} if strategy == "auto" else {}  # counts and floors, not the search, are tested
    sel = prunelab.select(X, y, keep=keep, min_keep=min_keep, strategy=strategy, random_state=seed, **cheap)
    requested = requested_count(n, keep=keep)
    expected = max(requested, min(min_keep, n), len(np.unique(y)))
    assert len(sel.indices) == expected == sel.report.kept_count
    assert len(np.unique(sel.indices)) == expected
    assert set(np.unique(y[sel.indices])) == set(np.unique(y))
    assert bool(sel.report.floors) == (expected != requested)


@pytest.mark.parametrize("strategy, params, fragment", [
    ("cluster", {"spread": 1.5}, "'spread' parameter of ClusterSelector must be"),
    ("cluster", {"max_clusters": 0}, "'max_clusters' parameter"),
    ("prototype", {"mode": "medium"}, "'mode' parameter of PrototypeSelector must be a str among"),
    ("importance", {"half_life": 0.0}, "'half_life' parameter"),
    ("importance", {"weights": (1.0, -1.0, 1.0)}, "'weights' parameter"),
    ("diversity", {"cell_size": 1}, "'cell_size' parameter"),
    ("condense", {"n_neighbors": 0}, "'n_neighbors' parameter"),
    ("auto", {"folds": 1}, "'folds' parameter of AutoSelector"),
    ("auto", {"fractions": (0.0, 0.5)}, "'fractions' parameter"),
    ("auto", {"strategies": ("auto",)}, "'strategies' parameter"),
    ("auto", {"holdout": "workloads"}, "'holdout' parameter"),
    ("auto", {"per_group": 5}, "unknown option"),
    ("random", {"nope": 1}, "unknown option"),
])
def test_bad_strategy_parameters(strategy: str, params: dict, fragment: str) -> None:
    X, y = blobs(60)
    with pytest.raises(UserError, match=fragment):
        prunelab.select(X, y, keep=0.5, strategy=strategy, **params)

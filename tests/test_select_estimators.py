"""The scikit-learn contract, checked by scikit-learn: every registered strategy passes
`check_estimator`, and selectors work as steps of imbalanced-learn pipelines and in GridSearchCV."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from prunelab.errors import UserError
from prunelab.select import AutoSelector, ClusterSelector, CondenseSelector, get_selector, list_strategies


def _instances() -> list[BaseEstimator]:
    """One instance per registered strategy. `auto` searches a one-fraction grid on two folds
    (tolerance 0.1, so stores of 10 rows and more are searched):
    the same code path as its defaults (search, decide, apply), cheap enough for the ~45 fits
    each check makes."""
    out = []
    for name in list_strategies():
        if name == "auto":
            out.append(AutoSelector(fractions=(0.5,), folds=2, repeats=1, max_seconds=30.0, tolerance=0.1))
        else:
            out.append(get_selector(name))
    return out


@parametrize_with_checks(_instances())
def test_sklearn_check_estimator(estimator: BaseEstimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_every_strategy_is_checked() -> None:
    assert sorted(type(e).name for e in _instances()) == sorted(list_strategies())  # type: ignore[attr-defined]


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    return rng.normal(0, 4, size=(3, 4))[y] + rng.normal(size=(n, 4)), y


@pytest.mark.parametrize("bad, fragment, kind", [
    ("sparse", "sparse", UserError),
    ("complex", "complex data not supported", UserError),
    ("object", "must hold numbers", TypeError),
    ("1d", "expected 2d array", UserError),
    ("empty", "0 sample", UserError),
    ("no-features", "0 feature", UserError),
])
@pytest.mark.parametrize("strategy", list_strategies())
def test_clear_errors_for_unusable_input(strategy: str, bad: str, fragment: str, kind: type) -> None:
    import scipy.sparse

    X, y = _blobs(60)
    Xb: object = {
        "sparse": scipy.sparse.csr_matrix(X), "complex": X + 1j, "1d": X[:, 0],
        "object": np.array([[{"a": 1}] * 4] * 60, dtype=object), "empty": X[:0], "no-features": X[:, :0],
    }[bad]
    yb = y[:0] if bad == "empty" else y
    with pytest.raises(kind) as info:
        get_selector(strategy, keep=0.5).fit(Xb, yb)
    assert isinstance(info.value, UserError)  # the CLI turns it into exit 2 with one line
    assert fragment in str(info.value).lower()


@pytest.mark.parametrize("strategy", list_strategies())
def test_pickle_clone_set_params_n_features(strategy: str) -> None:
    X, y = _blobs()
    sel = get_selector(strategy, keep=0.3, random_state=1)
    if strategy == "auto":
        sel.set_params(fractions=(0.3,), folds=2, repeats=1)
    assert clone(sel).get_params() == sel.get_params()
    assert sel.set_params(min_keep=5) is sel and sel.min_keep == 5
    sel.fit(X, y)
    assert sel.n_features_in_ == 4
    again = pickle.loads(pickle.dumps(sel))
    np.testing.assert_array_equal(again.indices_, sel.indices_)
    assert again.report_.kept_count == sel.report_.kept_count == 90


def test_bad_parameter_is_a_user_error_naming_the_range() -> None:
    X, y = _blobs(60)
    with pytest.raises(UserError, match=r"'spread' parameter of ClusterSelector must be a float in the range "
                                        r"\[0.0, 1.0\]. Got 1.5 instead"):
        ClusterSelector(spread=1.5).fit(X, y)
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        CondenseSelector(n_neighbors=0).fit(X, y)


def test_in_an_imblearn_pipeline_and_in_grid_search() -> None:
    from imblearn.pipeline import Pipeline
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _blobs(600)
    pipe = Pipeline([("select", ClusterSelector(keep=0.3)), ("knn", KNeighborsClassifier())])
    pipe.fit(X, y)
    assert len(pipe.named_steps["select"].indices_) == 180
    assert pipe.score(X, y) > 0.9
    grid = GridSearchCV(pipe, {"select__keep": [0.1, 0.5], "select__spread": [0.0, 0.5]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"select__keep", "select__spread"}
    assert len(grid.cv_results_["mean_test_score"]) == 4
    # the refitted best pipeline kept its fraction of all 600 rows
    assert len(grid.best_estimator_.named_steps["select"].indices_) == round(600 * grid.best_params_["select__keep"])


def test_auto_in_an_imblearn_pipeline_with_its_own_estimator() -> None:
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression

    X, y = _blobs(300)
    auto = AutoSelector(keep=0.3, estimator=LogisticRegression(max_iter=200), folds=2, repeats=1)
    pipe = make_pipeline(auto, LogisticRegression(max_iter=200)).fit(X, y)
    step = pipe.steps[0][1]
    assert len(step.indices_) == 90
    assert "LogisticRegression" in step.report_.decisions["search"]["estimator"]

"""prunelab.prune end to end on real MNIST slices: exact sparsity, zeros held
through fine-tuning, lineage, schedules, cross-process use, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import prunelab
from prunelab.errors import UserError
from prunelab.models.model import Model
from prunelab.prune import PruneResult, Recipe, lottery_rounds
from prunelab.prune.api import initial_weights, train_config
from prunelab.store import Store
from tests.conftest import assert_user_error, run_cli, store_snapshot

TRAIN_LIMIT = 1500  # the parent's own slice; fine-tuning reuses it


@pytest.fixture(scope="module")
def trained() -> Model:
    """A LeNet-300-100 trained 2 epochs on 1,500 real MNIST images (unsaved)."""
    r = prunelab.train(arch="lenet-300-100", epochs=2, train_limit=TRAIN_LIMIT, threads=1, seed=0)
    return r.model


def saved(model: Model, store: Store) -> Model:
    return store.save(Model(spec=model.spec, weights=dict(model.weights), masks=dict(model.masks),
                            meta={k: model.meta[k] for k in ("kind", "metrics", "history", "config", "dataset",
                                                             "seed", "versions") if k in model.meta}))


def assert_zeros_held(result: PruneResult, parent: Model) -> None:
    child = result.model
    n = 0
    for name in child.weight_names():
        w = child.weights[name]
        mask = child.masks.get(name, np.ones(w.shape, dtype=bool))
        assert np.all(w[~mask] == 0.0), f"{name}: pruned weights revived"
        n += int((~mask).sum())
        if result.history:  # fine-tuning really moved the kept weights
            assert not np.array_equal(w[mask], parent.weights[name][mask])
    assert n == round(result.model.sparsity() * sum(child.weights[k].size for k in child.weight_names()))


def test_global_prune_exact_sparsity_and_lineage(trained: Model) -> None:
    store = Store()
    parent = saved(trained, store)
    r = prunelab.prune(parent.id, sparsity=0.9, store=store, finetune_epochs=1, threads=1, name="p90")
    n = sum(parent.weights[k].size for k in parent.weight_names())
    assert r.sparsity == round(0.9 * n) / n
    assert r.model.sparsity() == r.sparsity
    rec = store.get("p90")
    assert rec["parent"] == parent.id and rec["kind"] == "pruned"
    assert rec["config"]["method"] == "magnitude" and rec["config"]["scope"] == "global"
    assert rec["config"]["train_limit"] == TRAIN_LIMIT and rec["config"]["dataset"] == "mnist"
    assert rec["metrics"]["test_accuracy"] == r.test_accuracy
    assert rec["metrics"]["accuracy_before_finetune"] == r.accuracy_before_finetune
    assert len(rec["history"]) == 1 and "test_accuracy" in rec["history"][0]
    assert "PruneResult(id=" in repr(r) and r.parent == parent.id
    loaded = store.load("p90")
    assert set(loaded.masks) == set(parent.weight_names())
    assert r.history[0]["train_accuracy"] > 0.5  # fine-tuned on the parent's slice, not noise
    # a chain: prune the pruned model further; earlier zeros stay zeros
    r2 = prunelab.prune("p90", sparsity=0.95, store=store, finetune_epochs=1, threads=1)
    assert r2.parent == r.model.id and store.get(r2.model.id)["parent"] == r.model.id
    assert r2.sparsity == round(0.95 * n) / n
    for k in parent.weight_names():
        assert not (r2.model.masks[k] & ~loaded.masks[k]).any()
    assert train_config(r2.model)["epochs"] == 2  # the root's training config travels down
    with pytest.raises(UserError, match="already"):
        prunelab.prune(r2.model, sparsity=0.5, finetune_epochs=0)


def test_layer_scope_exact_per_layer_and_biases_untouched(trained: Model) -> None:
    r = prunelab.prune(trained, sparsity=0.8, scope="layer", finetune_epochs=0, layer_sparsity={"fc3": 0.5},
                       ignore_layers=["fc2"], threads=1)
    m = r.model
    assert int((~m.masks["fc1.weight"]).sum()) == round(0.8 * 300 * 784)
    assert int((~m.masks["fc3.weight"]).sum()) == 500
    assert "fc2.weight" not in m.masks and np.array_equal(m.weights["fc2.weight"], trained.weights["fc2.weight"])
    for b in ("fc1.bias", "fc2.bias", "fc3.bias"):  # no fine-tune: biases bit-identical, never masked
        assert np.array_equal(m.weights[b], trained.weights[b]) and b not in m.masks
    assert r.history == [] and r.test_accuracy == r.accuracy_before_finetune
    assert r.model.id is None  # no store given: nothing saved


@pytest.mark.parametrize("recipe", [Recipe(optimizer="adam", lr=3e-3),
                                    Recipe(optimizer="sgd", lr=0.05, lr_schedule="constant")],
                         ids=["adam", "sgd-momentum"])
def test_pruned_weights_stay_exactly_zero_through_finetuning(trained: Model, recipe: Recipe) -> None:
    r = prunelab.prune(trained, sparsity=0.9, finetune_epochs=2, recipe=recipe, threads=1)
    assert_zeros_held(r, trained)
    assert r.model.meta["config"]["recipe"]["optimizer"] == recipe.optimizer
    biases = [k for k in r.model.weights if k.endswith(".bias")]
    assert all(np.count_nonzero(r.model.weights[b]) == r.model.weights[b].size for b in biases)


@pytest.mark.parametrize("anneal", [False, True], ids=["one-run", "anneal"])
def test_gradual_schedule_reaches_target_and_holds_zeros(trained: Model, anneal: bool) -> None:
    recipe = Recipe(lr=2e-3, lr_schedule="constant", anneal=anneal, gradual_updates=7)
    r = prunelab.prune(trained, sparsity=0.95, schedule="gradual", finetune_epochs=2, threads=1, distill=0.5,
                       recipe=recipe)
    assert [h["epoch"] for h in r.history] == [1, 2]
    n = sum(trained.weights[k].size for k in trained.weight_names())
    assert r.sparsity == round(0.95 * n) / n and r.model.sparsity() == r.sparsity
    assert_zeros_held(r, trained)
    assert [h["sparsity"] for h in r.history] == sorted(h["sparsity"] for h in r.history)
    assert r.history[-1]["sparsity"] == pytest.approx(0.95)
    assert r.settings["schedule"] == "gradual" and r.settings["distill"] == 0.5


def test_lottery_rewinds_survivors_to_their_initial_values(trained: Model) -> None:
    r = prunelab.prune(trained, sparsity=0.5, schedule="lottery", finetune_epochs=0, threads=1)
    init = initial_weights(trained, train_config(trained))
    n = sum(trained.weights[k].size for k in trained.weight_names())
    assert r.sparsity == round(0.5 * n) / n
    for k in trained.weight_names():
        mask = r.model.masks[k]
        assert np.array_equal(r.model.weights[k][mask], init[k][mask])  # rewound, no training
        assert np.all(r.model.weights[k][~mask] == 0)
    # with training: one history row per round and epoch, sparsity rising 20% of the rest per round
    r2 = prunelab.prune(trained, sparsity=0.5, schedule="lottery", finetune_epochs=1, threads=1)
    assert [h["round"] for h in r2.history] == [1, 2, 3, 4]
    assert [h["sparsity"] for h in r2.history] == pytest.approx(lottery_rounds(0.5), abs=1e-5)
    assert_zeros_held(r2, trained)


def test_trained_in_one_process_pruned_in_another(tmp_path: Path, prunelab_home: Path) -> None:
    t = run_cli("train", "--arch", "lenet-300-100", "--epochs", "1", "--train-limit", "800", "--threads", "1",
                "--name", "base", "--json", check=True)
    parent = json.loads(t.stdout)["id"]
    p = run_cli("prune", "base", "--sparsity", "0.9", "--scope", "layer", "--layer-sparsity", "fc3=0.5",
                "--finetune-epochs", "1", "--name", "kid", "--threads", "1", "--json", check=True)
    out = json.loads(p.stdout)
    for key in ("id", "parent", "sparsity", "accuracy_before_finetune", "test_accuracy", "history", "params",
                "nonzero", "layer_sparsity"):
        assert key in out, key
    assert out["parent"] == parent
    child = Store().load("kid")
    assert int((~child.masks["fc1.weight"]).sum()) == round(0.9 * 235200)
    assert int((~child.masks["fc3.weight"]).sum()) == 500
    assert child.meta["config"]["train_limit"] == 800
    # and a third process prunes the child, from the store, by id
    p2 = run_cli("prune", out["id"], "--sparsity", "0.95", "--finetune-epochs", "0", "--json", check=True)
    assert json.loads(p2.stdout)["parent"] == out["id"]




@pytest.mark.parametrize("args,fragment", [
    (["--sparsity", "1.0"], "[0, 1)"),
    (["--sparsity", "-0.1"], "[0, 1)"),
    (["--sparsity", "nan"], "[0, 1)"),
    (["--sparsity", "0.9", "--ignore-layers", "fc7"], "no prunable layer named 'fc7'"),
    (["--sparsity", "0.9", "--layer-sparsity", "fc3=1.2"], "[0, 1)"),
    (["--sparsity", "0.9", "--scope", "row"], "unknown scope"),
])
def test_bad_input_exits_2_and_stores_nothing(prunelab_home: Path, args: list[str], fragment: str) -> None:
    model = _bad_input_parent(prunelab_home)
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("prune", model, *args), fragment)
    assert store_snapshot(prunelab_home) == before


_PARENT_CACHE: dict[str, tuple[str, bytes, bytes]] = {}


def _bad_input_parent(home: Path) -> str:
    """Train once (in-process, tiny), copy the registry into each test's fresh home."""
    if "p" not in _PARENT_CACHE:
        store = Store()
        r = prunelab.train(arch="lenet-300-100", epochs=1, train_limit=300, threads=1, store=store)
        db = home / "registry.db"
        con = __import__("sqlite3").connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        _PARENT_CACHE["p"] = (str(r.model.id), db.read_bytes(),
                              (home / "models" / f"{r.model.id}.safetensors").read_bytes())
        return str(r.model.id)
    model_id, db_bytes, weights = _PARENT_CACHE["p"]
    (home / "models").mkdir(exist_ok=True)
    (home / "registry.db").write_bytes(db_bytes)
    (home / "models" / f"{model_id}.safetensors").write_bytes(weights)
    return model_id


def test_unknown_model_and_missing_weights_exit_2(prunelab_home: Path) -> None:
    model = _bad_input_parent(prunelab_home)
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("prune", "no-such-model", "--sparsity", "0.5"), "no model 'no-such-model'")
    (prunelab_home / "models" / f"{model}.safetensors").unlink()
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("prune", model, "--sparsity", "0.5", "--json"), "weights file")
    assert store_snapshot(prunelab_home) == before


def test_library_bad_input_raises_before_any_work(trained: Model) -> None:
    store = Store()
    parent = saved(trained, store)
    before = store.list()
    for kwargs in ({"sparsity": float("nan")}, {"sparsity": 1}, {"sparsity": 0.5, "scope": "x"},
                   {"sparsity": 0.5, "method": "x"}, {"sparsity": 0.5, "ignore_layers": ["nope"]},
                   {"sparsity": 0.5, "layer_sparsity": {"fc1": float("nan")}},
                   {"sparsity": 0.5, "method": "structured", "schedule": "gradual"},
                   {"sparsity": 0.5, "budget": "hunch"}, {"sparsity": 0.5, "finetune_epochs": -1},
                   {"sparsity": 0.5, "method": "structured", "ignore_layers": "fc3"},
                   {"sparsity": 0.5, "method": "structured", "budget": "sensitivity"},
                   {"sparsity": 0.95, "ignore_layers": "fc1"}, {"sparsity": 0.5, "seed": -1}):
        with pytest.raises(UserError):
            prunelab.prune(parent.id, store=store, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="already exists"):
        prunelab.prune(parent.id, sparsity=0.5, store=store, name=parent.id)
    assert store.list() == before


def test_sensitivity_cli_table_plot_budget(tmp_path: Path, prunelab_home: Path) -> None:
    model = _bad_input_parent(prunelab_home)
    png = tmp_path / "sens.png"
    p = run_cli("sensitivity", model, "--sparsities", "0.5,0.9,0.99", "--target", "0.9", "--plot", str(png),
                "--limit", "2000", "--json", check=True)
    out = json.loads(p.stdout)
    assert set(out["accuracy"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert all(len(v) == 3 for v in out["accuracy"].values())
    # the scan chooses budgets, so it reads the validation split, never the test split
    assert out["evaluated_on"]["split"] == "validation" and out["evaluated_on"]["count"] <= 2000
    sizes = out["sizes"]
    overall = sum(out["budget"][k] * sizes[k] for k in sizes) / sum(sizes.values())
    assert overall == pytest.approx(0.9, abs=1e-4)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_user_error(run_cli("sensitivity", model, "--sparsities", "0.5,1.0"), "[0, 1)")
    assert_user_error(run_cli("sensitivity", model, "--plot", str(tmp_path / "nope" / "x.png"),
                              "--sparsities", "0.5", "--limit", "100"), "does not exist")


def test_sensitivity_says_which_split_it_read(prunelab_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The human output names the split and its size; a parent trained without a validation
    split (it saw every image) gets a warning, in the text and as seen_in_training.
    (In-process CLI: the subprocess round trip is covered by the test above.)"""
    from prunelab.cli import main

    held_out = _bad_input_parent(prunelab_home)
    main(["sensitivity", held_out, "--sparsities", "0.5", "--threads", "1"])  # 300 images, 1/12 held out
    out = capsys.readouterr().out
    assert "measured on the validation split, 25 images (held out of the parent's training)" in out, out
    assert "warning" not in out and "test accuracy" not in out
    prunelab.train(arch="lenet-300-100", epochs=1, train_limit=300, val_fraction=0.0, threads=1, store=Store(),
                   name="saw-all")
    main(["sensitivity", "saw-all", "--sparsities", "0.5", "--threads", "1"])
    out = capsys.readouterr().out
    assert "measured on the validation split, 25 images (warning: the parent was trained without" in out, out
    main(["sensitivity", "saw-all", "--sparsities", "0.5", "--threads", "1", "--json"])
    seen = json.loads(capsys.readouterr().out)["evaluated_on"]
    assert seen == {"dataset": "mnist", "split": "validation", "count": 25, "seen_in_training": True}


def test_budget_sensitivity_prunes_to_the_target(trained: Model) -> None:
    r = prunelab.prune(trained, sparsity=0.9, budget="sensitivity", finetune_epochs=0, threads=1)
    assert r.sparsity == pytest.approx(0.9, abs=1e-4)
    assert r.settings["budget"] == "sensitivity" and r.settings["scope"] == "layer"
    assert set(r.settings["layer_sparsity"]) == set(trained.weight_names())
    # chosen on validation, reported on test: both are recorded and they are different splits
    meta = r.model.meta
    assert meta["config"]["val_count"] > 0 and r.val_accuracy is not None
    assert meta["metrics"]["test_accuracy"] == r.test_accuracy and meta["metrics"]["val_accuracy"] == r.val_accuracy


def test_cancel_from_callback_stores_nothing(trained: Model) -> None:
    from prunelab.progress import Cancelled, Event

    store = Store()
    parent = saved(trained, store)

    def cancel(e: Event) -> None:
        if e.kind == "epoch":
            raise Cancelled

    with pytest.raises(Cancelled):
        prunelab.prune(parent.id, sparsity=0.9, store=store, callback=cancel, finetune_epochs=1)
    assert [m["id"] for m in store.list()] == [parent.id]
    assert sorted(p.stem for p in (Path(store.root) / "models").glob("*")) == [parent.id]


def test_threads_option_sets_the_torch_threads_the_run_uses(trained: Model) -> None:
    """threads=N: every fine-tune step runs with N torch threads and the child records N;
    threads=None ("default: torch's"): the caller's count is used, recorded and left alone."""
    from prunelab.progress import Event

    before = torch.get_num_threads()
    seen: list[int] = []

    def watch(e: Event) -> None:
        if e.kind in ("batch", "epoch"):
            seen.append(torch.get_num_threads())

    try:
        torch.set_num_threads(2)
        r = prunelab.prune(trained, sparsity=0.5, schedule="oneshot", finetune_epochs=1, threads=1, callback=watch)
        assert seen and set(seen) == {1}, seen
        assert r.model.meta["config"]["threads"] == 1
        torch.set_num_threads(2)
        seen.clear()
        r = prunelab.prune(trained, sparsity=0.5, schedule="oneshot", finetune_epochs=1, callback=watch)
        assert seen and set(seen) == {2}, seen
        assert r.model.meta["config"]["threads"] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_sensitivity_library_table_and_budget(trained: Model) -> None:
    from prunelab.prune.sensitivity import sensitivity

    res = sensitivity(trained, (0.5, 0.9), limit=1000, threads=1)
    table = res.table()
    assert "fc1.weight" in table and "90%" in table and "SensitivityResult(" in repr(res)
    # pruning a layer to 90% without fine-tuning costs accuracy somewhere
    assert min(min(v) for v in res.accuracy.values()) < res.dense_accuracy
    b = res.budget(0.8, ignore=["fc3.weight"])
    assert "fc3.weight" not in b
    assert sum(b[k] * res.sizes[k] for k in b) == pytest.approx(0.8 * sum(res.sizes.values()), rel=1e-4)
    with pytest.raises(UserError, match="out of reach"):
        res.budget(0.95, ignore=["fc1.weight"])


def test_child_masks_equal_a_numpy_top_k_and_its_stored_sparsity_is_exact(trained: Model) -> None:
    """The spec API runs on the engine: its masks equal an independent numpy top-k of the
    parent's |w|, and the stored child (rebuilt from its JSON spec) has exactly round(s * N) zeros."""
    store = Store()
    parent = saved(trained, store)
    r = prunelab.prune(parent.id, sparsity=0.9, schedule="oneshot", finetune_epochs=0, store=store, threads=1)
    names = parent.weight_names()
    flat = np.concatenate([np.abs(parent.weights[n]).ravel() for n in names])
    k = round(0.9 * flat.size)
    threshold = np.sort(flat)[k - 1]
    loaded = Store().load(r.model.id)
    assert loaded.spec.to_dict() == parent.spec.to_dict()
    zeros = 0
    for n in names:
        want = np.abs(parent.weights[n]) > threshold
        assert np.array_equal(loaded.masks[n], want), n
        assert np.array_equal(loaded.weights[n] != 0, want), n  # kept weights non-zero, pruned exactly zero
        zeros += int((loaded.weights[n] == 0).sum())
    assert zeros == k and r.sparsity == k / flat.size == loaded.sparsity()


def test_settings_object_and_keywords_are_one_path(trained: Model) -> None:
    from dataclasses import FrozenInstanceError

    from prunelab.prune import PruneSettings

    s = PruneSettings(sparsity=0.8, schedule="oneshot", finetune_epochs=0, ignore=("fc3",))
    assert s.scope == "global" and s.schedule_name == "oneshot"  # defaults resolved once, here
    a = prunelab.prune(trained, s, threads=1)
    b = prunelab.prune(trained, sparsity=0.8, schedule="oneshot", finetune_epochs=0, ignore_layers="fc3", threads=1)
    c = prunelab.prune(trained, 0.8, schedule="oneshot", finetune_epochs=0, ignore=["fc3"], threads=1)
    for other in (b, c):
        assert all(np.array_equal(a.model.weights[k], other.model.weights[k]) for k in a.model.weights)
        assert a.settings == other.settings
    assert a.settings["ignore_layers"] == ["fc3.weight"] and "fc3.weight" not in a.model.masks
    assert PruneSettings(sparsity=0.5, method="structured").scope == "layer"
    with pytest.raises(FrozenInstanceError):
        s.sparsity = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError, match="sparsty"):
        prunelab.prune(trained, sparsty=0.5)
    for bad in ({"sparsity": 1.0}, {"sparsity": 0.5, "schedule": "cubic"}, {"sparsity": 0.5, "threads": 0},
                {"sparsity": 0.5, "lr": -1.0}, {"sparsity": 0.5, "layer_sparsity": {"fc1": 2}}):
        with pytest.raises(UserError):
            PruneSettings(**bad)  # type: ignore[arg-type]
        with pytest.raises(UserError):
            s.with_(**bad)


def test_api_and_sensitivity_import_each_other_nowhere() -> None:
    """The old cycle (api imported sensitivity, sensitivity imported api inside a function)
    is gone, and no function-level import of prunelab.prune in either module dodges one
    (matplotlib stays lazy in `plot`: it is optional and slow to import)."""
    import ast

    src = Path(prunelab.__file__).parent / "prune"
    for mod, forbidden in (("sensitivity", "prunelab.prune.api"), ("api", None)):
        tree = ast.parse((src / f"{mod}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert forbidden not in imported
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            local = [n.module for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)]
            assert not [m for m in local if m and m.startswith("prunelab.prune")], (mod, fn.name)


def test_the_engines_criteria_reach_stored_models(trained: Model) -> None:
    """criterion= picks from the engine's registry: random pruning hits the same exact
    count as magnitude, on other weights; l2 ranks single weights as l1 does."""
    kw = {"sparsity": 0.7, "schedule": "oneshot", "finetune_epochs": 0, "threads": 1}
    l1, l2, rnd = (prunelab.prune(trained, criterion=c, **kw) for c in ("l1", "l2", "random"))
    assert l1.sparsity == l2.sparsity == rnd.sparsity and rnd.settings["criterion"] == "random"
    assert all(np.array_equal(l1.model.masks[k], l2.model.masks[k]) for k in l1.model.masks)
    assert not np.array_equal(l1.model.masks["fc1.weight"], rnd.model.masks["fc1.weight"])
    assert rnd.accuracy_before_finetune < l1.accuracy_before_finetune
    with pytest.raises(UserError, match="unknown criterion"):
        prunelab.prune(trained, criterion="taylor", **kw)

"""The registry: save/load, lineage, names, removal, and kills mid-save."""

from __future__ import annotations

import numpy as np
import pytest

from prunelab.errors import UserError
from prunelab.models import Model, create_spec
from prunelab.store import Store


def _model(seed: int = 0, **meta) -> Model:
    spec = create_spec("mlp", hidden=(16,))
    rng = np.random.default_rng(seed)
    weights = {}
    for layer in spec.weight_layers():
        weights[f"{layer.name}.weight"] = rng.standard_normal(layer.weight_shape()).astype(np.float32)
        weights[f"{layer.name}.bias"] = rng.standard_normal(layer.weight_shape()[0]).astype(np.float32)
    return Model(spec=spec, weights=weights, meta={"metrics": {"test_accuracy": 0.5}, **meta})


def test_save_load_round_trip(prunelab_home):
    store = Store()
    m = _model()
    m.masks = {"fc1.weight": m.weights["fc1.weight"] > 0}
    m.weights["fc1.weight"] = m.weights["fc1.weight"] * m.masks["fc1.weight"]
    saved = store.save(m)
    assert len(saved.id) == 6 and (prunelab_home / "models" / f"{saved.id}.safetensors").is_file()
    loaded = store.load(saved.id)
    assert loaded.spec == m.spec
    for k in m.weights:
        np.testing.assert_array_equal(loaded.weights[k], m.weights[k])
    np.testing.assert_array_equal(loaded.masks["fc1.weight"], m.masks["fc1.weight"])
    rec = store.get(saved.id)
    assert rec["sparsity"] == pytest.approx(m.sparsity()) and rec["params"] == m.params()
    assert rec["metrics"]["test_accuracy"] == 0.5


def test_names_lineage_and_rm(prunelab_home):
    store = Store()
    parent = store.save(_model(name="base"))
    child = store.save(_model(1, parent="base", name="kid"))
    grandchild = store.save(_model(2, parent=child.id))
    assert store.resolve("kid") == child.id and store.children("base") == [child.id]
    with pytest.raises(UserError, match="already exists"):
        store.save(_model(3, name="base"))
    with pytest.raises(UserError, match="must not be empty"):
        store.save(_model(3, name="  "))
    with pytest.raises(UserError, match="has children"):
        store.remove("base")
    assert {r["id"] for r in store.list()} == {parent.id, child.id, grandchild.id}
    removed = store.remove("base", recursive=True)
    assert set(removed) == {parent.id, child.id, grandchild.id}
    assert store.list() == [] and list((prunelab_home / "models").iterdir()) == []
    with pytest.raises(UserError, match="no model"):
        store.load("base")


def test_missing_or_damaged_weights_file_is_a_clear_error(prunelab_home):
    store = Store()
    m = store.save(_model())
    path = store.weights_path(m.id)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="damaged"):
        store.load(m.id)
    path.unlink()
    with pytest.raises(UserError, match="missing"):
        store.load(m.id)


def test_doctor_finds_and_quarantines_problems(prunelab_home):
    from prunelab.doctor import check_store

    store = Store()
    good = store.save(_model(0))
    bad = store.save(_model(1))
    assert check_store().healthy
    store.weights_path(bad.id).write_bytes(b"garbage")
    (prunelab_home / "models" / "zzzzzz.safetensors").write_bytes(b"orphan")
    (prunelab_home / "models" / ".x.safetensors.abc.tmp").write_bytes(b"half")
    report = check_store()
    assert len(report.problems) == 3 and not report.actions
    repaired = check_store(repair=True)
    assert len(repaired.actions) >= 3
    assert check_store().healthy
    assert [r["id"] for r in store.list()] == [good.id]
    assert store.load(good.id).spec == good.spec
    assert len(list((prunelab_home / "quarantine").iterdir())) == 3


def test_doctor_on_a_corrupted_registry(prunelab_home):
    from prunelab.doctor import check_store
    from tests.conftest import assert_user_error, run_cli

    store = Store()
    store.save(_model(0))
    db = prunelab_home / "registry.db"
    for extra in ("registry.db-wal", "registry.db-shm"):
        (prunelab_home / extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 200)
    assert_user_error(run_cli("models"), "prunelab doctor")
    report = check_store(repair=True)
    assert not report.healthy and report.actions
    assert Store().list() == []  # a fresh registry; the old one is in quarantine/


def test_registry_from_a_newer_prunelab_is_refused_untouched(prunelab_home):
    import sqlite3

    Store().save(_model())
    db = prunelab_home / "registry.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(UserError, match="newer prunelab"):
        Store()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 99
    assert con.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 1
    con.close()


def test_racing_saves_for_one_name_give_one_model_and_clear_errors(prunelab_home):
    """Regression: a name taken between the check and the insert was reported as a damaged registry."""
    import threading

    errors: list[str] = []
    saved: list[str] = []
    barrier = threading.Barrier(6)

    def save(i: int) -> None:
        store = Store()
        barrier.wait()
        try:
            saved.append(store.save(_model(i, name="same")).id)
        except UserError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(saved) == 1 and len(errors) == 5
    assert all("already exists" in e for e in errors), errors
    assert [r["id"] for r in Store().list()] == saved
    assert len(list((prunelab_home / "models").glob("*.safetensors"))) == 1

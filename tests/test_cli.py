"""The CLI contract: one JSON object with --json, exit 2 and one `error:` line on bad input."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_user_error, run_cli, store_snapshot


def test_train_eval_models_show_rm(prunelab_home):
    proc = run_cli("train", "--arch", "mlp", "--hidden", "32", "--epochs", "2", "--train-limit", "1000",
                   "--batch-size", "16", "--name", "tiny", "--json", check=True)
    out = json.loads(proc.stdout)
    assert set(out) >= {"id", "test_accuracy", "params", "seconds"} and out["test_accuracy"] > 0.6
    assert proc.stderr == ""  # no progress bar under --json
    assert store_snapshot(prunelab_home)[0] == [out["id"]]

    ev = json.loads(run_cli("eval", "tiny", "--json", check=True).stdout)
    assert ev["id"] == out["id"] and ev["test_accuracy"] == pytest.approx(out["test_accuracy"])
    assert len(ev["confusion"]) == 10 and sum(map(sum, ev["confusion"])) == 10000

    models = json.loads(run_cli("models", "--json", check=True).stdout)["models"]
    assert [m["id"] for m in models] == [out["id"]] and models[0]["name"] == "tiny"
    shown = json.loads(run_cli("show", out["id"], "--json", check=True).stdout)
    assert shown["spec"]["arch"] == "mlp" and shown["config"]["train_limit"] == 1000
    assert shown["versions"]["torch"] and [h["epoch"] for h in shown["history"]] == [1, 2]  # one row per epoch

    human = run_cli("models", check=True).stdout
    assert "tiny" in human and out["id"] in human

    assert json.loads(run_cli("rm", "tiny", "--json", check=True).stdout)["removed"] == [out["id"]]
    assert store_snapshot(prunelab_home) == ([], [])


BAD_INPUT = [
    (["train", "--arch", "resnet"], "invalid choice"),
    (["train", "--arch", "mlp", "--epochs", "-1"], "--epochs"),
    (["train", "--arch", "mlp", "--epochs", "x"], "invalid int"),
    (["train", "--arch", "mlp", "--lr", "nan"], "--lr"),
    (["train", "--arch", "mlp", "--lr", "0"], "--lr"),
    (["train", "--arch", "mlp", "--hidden", "a,b"], "comma-separated"),
    (["train", "--arch", "mlp", "--batch-size", "0"], "--batch-size"),
    (["train", "--arch", "mlp", "--train-limit", "0"], "--train-limit"),
    (["train", "--arch", "mlp", "--dataset", "idx:/nonexistent"], "not found"),
    (["train", "--arch", "mlp", "--dataset", "cifar"], "unknown dataset"),
    (["train", "--arch", "mlp", "--name", ""], "must not be empty"),
    (["train"], "--arch"),
    (["eval", "nope"], "no model"),
    (["show", "nope"], "no model"),
    (["rm", "nope"], "no model"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_stores_nothing(prunelab_home, args, fragment):
    before = store_snapshot(prunelab_home)
    proc = run_cli(*args, "--json") if args[0] != "frobnicate" else run_cli(*args)
    assert_user_error(proc, fragment)
    assert proc.stdout == ""
    assert store_snapshot(prunelab_home) == before


def test_duplicate_name_and_rm_with_children_store_nothing(prunelab_home):
    from prunelab.models import Model, create_spec
    from prunelab.store import Store
    from tests.test_store import _model

    store = Store()
    parent = store.save(_model(name="base"))
    store.save(Model(spec=create_spec("mlp", hidden=(16,)), weights=_model(1).weights,
                     meta={"parent": parent.id}))
    before = store_snapshot(prunelab_home)
    assert_user_error(run_cli("train", "--arch", "mlp", "--name", "base", "--epochs", "1"), "already exists")
    assert_user_error(run_cli("rm", "base"), "--recursive")
    assert store_snapshot(prunelab_home) == before

"""Specs round-trip exactly and agree with the torch modules built from them."""

from __future__ import annotations

import json

import pytest
import torch

from prunelab.errors import UserError
from prunelab.models import ModelSpec, build, create_spec, list_presets
from prunelab.models.builder import get_weights


@pytest.mark.parametrize("arch", list_presets())
def test_every_preset_round_trips(arch):
    spec = create_spec(arch)
    again = ModelSpec.from_json(json.dumps(json.loads(spec.to_json())))
    assert again == spec and again.to_dict() == spec.to_dict()
    module = build(spec)
    assert spec.num_params() == sum(p.numel() for p in module.parameters())
    out = module(torch.zeros(3, *spec.input_shape))
    assert out.shape == (3, spec.classes)
    # names of the weights are the spec's layer names
    assert {f"{la.name}.weight" for la in spec.weight_layers()} <= set(get_weights(module))


def test_lenet_presets_match_the_literature():
    assert create_spec("lenet-300-100").num_params() == 266_610
    lenet5 = create_spec("lenet-5")
    assert lenet5.num_params() == 431_080  # Caffe LeNet-5, as in Han et al. 2015
    assert [la.name for la in lenet5.weight_layers()] == ["conv1", "conv2", "fc1", "fc2"]


def test_custom_sizes():
    spec = create_spec("mlp", hidden=(64, 32))
    assert [la.args["out_features"] for la in spec.weight_layers()] == [64, 32, 10]
    spec = create_spec("cnn", channels=(4, 8), hidden=(16,))
    assert spec.layer("conv2").args["out_channels"] == 8


def test_bad_specs_fail_loudly():
    good = create_spec("mlp", hidden=(8,)).to_dict()
    with pytest.raises(UserError, match="unknown model spec keys"):
        ModelSpec.from_dict({**good, "dropout": 0.5})
    bad = json.loads(json.dumps(good))
    bad["layers"][1]["in_features"] = 100
    with pytest.raises(UserError, match="expects 100 inputs"):
        ModelSpec.from_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["layers"][1]["kind"] = "lstm"
    with pytest.raises(UserError, match="unknown layer kind"):
        ModelSpec.from_dict(bad)
    with pytest.raises(UserError, match="unknown architecture"):
        create_spec("resnet")
    with pytest.raises(UserError, match="positive integers"):
        create_spec("mlp", hidden=(0,))
    with pytest.raises(UserError, match="no layer named"):
        create_spec("lenet-300-100").layer("fc9")

"""The Loihi 2 resource estimate against hand-computed cases.

Limits used (spikeport/measure/mapping_loihi2.py): 128 neuron cores per chip, 1,000,000 neurons
and 120,000,000 synapses per chip (Intel's Loihi 2 brief, 2021), shared evenly: 7812 neurons and
937,500 synapses per core (assumed); fan-in 4096 per core (assumed, Loihi 1's figure).
"""
from __future__ import annotations

import pytest

from spikeport.errors import SpikeportError
from spikeport.measure import map_to_loihi2


def layer(name, n, fan_in, nnz, bits=8):
    return {"name": name, "n_neurons": n, "fan_in": fan_in, "n_synapses": nnz, "weight_bits": bits}


def test_dense_784_1500_10_is_bound_by_synapses():
    # fc1: 1500 neurons -> ceil(1500 / 7812) = 1 core; 784 * 1500 = 1,176,000 synapses ->
    # ceil(1,176,000 / 937,500) = 2 cores; fan-in 784 <= 4096: 2 cores, synapses bind.
    # fc2: 10 neurons, 15,000 synapses: 1 core (neurons, the tie goes to neurons).
    m = map_to_loihi2([layer("fc1", 1500, 784, 784 * 1500), layer("fc2", 10, 1500, 15000)])
    fc1, fc2 = m["layers"]
    assert fc1["cores"] == 2 and fc1["binding"] == "synapses"
    assert fc1["cores_by_constraint"] == {"neurons": 1, "synapses": 2, "fan_in": 1}
    assert fc1["neurons_per_core"] == 750
    assert fc2["cores"] == 1 and fc2["binding"] == "neurons"
    assert m["total_cores"] == 3 and m["chips"] == 1 and m["estimate"] is True


def test_many_neurons_bind_neurons():
    # 20,000 neurons: 2 * 7812 = 15,624 < 20,000 <= 23,436 = 3 * 7812 -> 3 cores; 6667 per core.
    m = map_to_loihi2([layer("big", 20000, 10, 200000)])
    big = m["layers"][0]
    assert (big["cores"], big["binding"], big["neurons_per_core"]) == (3, "neurons", 6667)


def test_wide_fan_in_splits_the_layer():
    # fan-in 10,000 > 4096: ceil(10,000 / 4096) = 3 groups of 1 core each.
    wide = map_to_loihi2([layer("wide", 100, 10000, 1000)])["layers"][0]
    assert wide["cores"] == 3 and wide["binding"] == "fan_in+neurons"
    assert wide["cores_by_constraint"]["fan_in"] == 3


def test_chips_and_labels():
    # 200 one-core layers -> ceil(200 / 128) = 2 chips.
    m = map_to_loihi2([layer(f"l{i}", 10, 10, 100) for i in range(200)])
    assert m["total_cores"] == 200 and m["chips"] == 2
    assert "2021" in m["source"] and "128 neuron cores" in m["source"]
    assert m["assumptions"][0].startswith("ESTIMATE")
    assert sum("publishes no per-core" in a for a in m["assumptions"]) == 3  # neurons, synapses, fan-in
    assert m["limits"]["neurons_per_core (assumed)"] == 7812
    assert m["limits"]["synapses_per_core (assumed)"] == 937500


def test_bad_layers_are_refused():
    with pytest.raises(SpikeportError, match="'x'.*weight_bits"):
        map_to_loihi2([layer("x", 10, 10, 10, bits=16)])
    with pytest.raises(SpikeportError, match="no layers"):
        map_to_loihi2([])

"""A :class:`~spikeport.core.net.LoihiNet` as plain arrays and back (no pickle): how a network travels to
the supervised Lava child and to cluster workers. ``header`` is JSON (uint8 bytes); ``p{i}_bias``,
``p{i}_w{j}`` and ``p{i}_d{j}`` hold population i's biases, connection j's weights and delays."""
from __future__ import annotations

import numpy as np

from spikeport.core import loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.sigma_delta import SigmaDeltaParams


def _conn_head(c: Connection) -> dict:
    pool = None if c.pool is None else {"kernel": list(c.pool.kernel), "stride": list(c.pool.stride),
                                        "padding": list(c.pool.padding)}
    return {"name": c.name, "weight_exp": int(c.weight_exp), "sparse": bool(c.sparse), "kind": c.kind,
            "in_shape": list(c.in_shape), "pool": pool, "stride": list(c.stride), "padding": list(c.padding),
            "dilation": list(c.dilation), "groups": int(c.groups), "wide": bool(c.wide),
            "delay": c.delay is not None, "binary": bool(c.binary), "native": bool(c.native)}


def _neuron_head(p: Population) -> dict:
    if p.sd is not None:
        sd = p.sd
        return {"sd": sd.kind, "vth": int(sd.vth), "spike_exp": int(sd.spike_exp), "state_exp": int(sd.state_exp),
                "relu": bool(sd.relu)}
    return {"du": int(p.lif.du), "dv": int(p.lif.dv), "vth": int(p.lif.vth), "bias_exp": int(p.lif.bias_exp),
            "floor_v": bool(p.lif.floor_v)}


def save_arrays(net: LoihiNet) -> dict[str, np.ndarray]:
    """The network as plain arrays (for a child process; read back with :func:`load_arrays`, no pickle)."""
    import json

    out: dict[str, np.ndarray] = {}
    head = {"input_shape": list(net.input_shape), "time_steps": int(net.time_steps),
            "graded_input": bool(net.graded_input), "output": net.output, "populations": []}
    for i, p in enumerate(net.populations):
        head["populations"].append({
            "name": p.name, "size": int(p.size), "shape": list(p.shape), **_neuron_head(p),
            "encoder": p.encoder, "message_bits": int(p.message_bits), "has_input": p.input is not None,
            "recurrent": p.recurrent is not None, "bias_line": p.bias_line is not None,
            "conns": [_conn_head(c) for c in p.connections]})
        bias = p.sd.bias if p.sd is not None else p.lif.bias_mant
        out[f"p{i}_bias"] = np.broadcast_to(np.asarray(bias, np.int64), (p.size,)).copy()
        for j, c in enumerate(p.connections):
            out[f"p{i}_w{j}"] = c.weight
            if c.delay is not None:
                out[f"p{i}_d{j}"] = np.asarray(c.delay)
    out["header"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    return out


def load_arrays(arrays) -> LoihiNet:
    import json

    head = json.loads(bytes(np.asarray(arrays["header"], dtype=np.uint8)).decode())
    pops = []
    for i, p in enumerate(head["populations"]):
        conns = []
        for j, c in enumerate(p["conns"]):
            pool = None if c["pool"] is None else Pool2d(**{k: tuple(v) for k, v in c["pool"].items()})
            conns.append(Connection(c["name"], np.asarray(arrays[f"p{i}_w{j}"]), c["weight_exp"], c["sparse"],
                                    kind=c["kind"], in_shape=tuple(c["in_shape"]), pool=pool, stride=c["stride"],
                                    padding=c["padding"], dilation=c["dilation"], groups=c["groups"],
                                    wide=bool(c.get("wide", False)), binary=bool(c.get("binary", False)),
                                    native=bool(c.get("native", False)),
                                    delay=np.asarray(arrays[f"p{i}_d{j}"]) if c.get("delay") else None))
        bias = np.asarray(arrays[f"p{i}_bias"])
        lif = sd = None
        if "sd" in p:
            sd = SigmaDeltaParams(p["sd"], vth=p["vth"], bias=bias, spike_exp=p["spike_exp"],
                                  state_exp=p["state_exp"], relu=p["relu"])
        else:
            lif = loihi.LIFParams(du=p["du"], dv=p["dv"], vth=p["vth"], bias_mant=bias, bias_exp=p["bias_exp"],
                                  floor_v=p["floor_v"])
        if not p.get("has_input", True):
            conns.insert(0, None)
        rec = conns[1] if p["recurrent"] else None
        line = conns[-1] if p.get("bias_line") else None
        pops.append(Population(p["name"], p["size"], lif, conns[0], rec, shape=tuple(p["shape"]), bias_line=line,
                               sd=sd, encoder=p.get("encoder"), message_bits=int(p.get("message_bits", 0))))
    return LoihiNet(tuple(head["input_shape"]), pops, head["time_steps"], head["graded_input"],
                    output=head.get("output", "auto"))

"""The Pareto keeper's dominance rules, its front store, and the front's table and figures."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest

from hgq_rtl.train.pareto import (
    FrontRow,
    FrontStore,
    ParetoKeeper,
    ParetoPoint,
    front_records,
    plot_front,
    write_front,
)
from hgq_rtl.train.plots import (
    layer_weight_bits,
    plot_bits_heatmap,
    plot_bits_histogram,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def point(epoch: int, metric: float, ebops: float) -> ParetoPoint:
    return ParetoPoint(epoch, 1e-6, metric, ebops)


def epochs(keeper: ParetoKeeper) -> list[int]:
    return [p.epoch for p in keeper.points]


def test_first_point_is_kept():
    keeper = ParetoKeeper()
    assert keeper.offer(point(0, 0.5, 100)) == (True, [])
    assert epochs(keeper) == [0]


def test_a_dominated_point_is_refused_and_a_dominating_one_removes():
    keeper = ParetoKeeper()
    keeper.offer(point(0, 0.8, 100))
    assert keeper.offer(point(1, 0.7, 120)) == (False, [])  # worse in both
    kept, removed = keeper.offer(point(2, 0.9, 90))  # better in both
    assert kept and removed == [point(0, 0.8, 100)]
    assert epochs(keeper) == [2]


def test_trade_offs_are_all_kept_cheapest_first():
    keeper = ParetoKeeper()
    for k, (metric, ebops) in enumerate([(0.9, 300), (0.8, 100), (0.85, 200)]):
        assert keeper.offer(point(k, metric, ebops))[0]
    assert epochs(keeper) == [1, 2, 0]
    # one point dominating two of them removes exactly those two
    kept, removed = keeper.offer(point(3, 0.86, 100))
    assert kept and sorted(p.epoch for p in removed) == [1, 2]
    assert epochs(keeper) == [3, 0]


def test_ties():
    keeper = ParetoKeeper()
    keeper.offer(point(0, 0.8, 100))
    # exactly equal: adds nothing, the earlier point stays
    assert keeper.offer(point(1, 0.8, 100)) == (False, [])
    # equal metric, fewer EBOPs: replaces it
    assert keeper.offer(point(2, 0.8, 90)) == (True, [point(0, 0.8, 100)])
    # equal EBOPs, better metric: replaces it
    assert keeper.offer(point(3, 0.81, 90)) == (True, [point(2, 0.8, 90)])
    # equal EBOPs, worse metric / equal metric, more EBOPs: refused
    assert keeper.offer(point(4, 0.80, 90)) == (False, [])
    assert keeper.offer(point(5, 0.81, 91)) == (False, [])
    assert epochs(keeper) == [3]


def test_lower_is_better_metric():
    keeper = ParetoKeeper(higher_is_better=False)
    keeper.offer(point(0, 0.5, 100))
    assert keeper.offer(point(1, 0.6, 100)) == (False, [])  # larger error, same cost
    assert keeper.offer(point(2, 0.4, 100)) == (True, [point(0, 0.5, 100)])
    assert keeper.offer(point(3, 0.45, 50))[0]  # trade-off
    assert epochs(keeper) == [3, 2]


def test_non_finite_points_are_refused():
    keeper = ParetoKeeper()
    with pytest.raises(ValueError, match="finite"):
        keeper.offer(point(0, float("nan"), 10))
    with pytest.raises(ValueError, match="finite"):
        keeper.offer(point(0, 0.5, float("inf")))
    with pytest.raises(TypeError, match="higher_is_better"):
        ParetoKeeper(higher_is_better="yes")


def test_state_dict_round_trip():
    keeper = ParetoKeeper(higher_is_better=False)
    for k, (metric, ebops) in enumerate([(0.3, 300), (0.5, 100), (0.4, 200)]):
        keeper.offer(point(k, metric, ebops))
    state = json.loads(json.dumps(keeper.state_dict()))  # plain values only
    again = ParetoKeeper.from_state_dict(state)
    assert again.points == keeper.points and not again.higher_is_better
    assert again.offer(point(9, 0.35, 300)) == (False, [])


def test_front_store_files_and_pruning(tmp_path):
    import torch

    store = FrontStore(tmp_path / "front")
    store.put(3, {"w": torch.ones(2)})
    store.put(7, {"w": torch.zeros(2)})
    assert torch.equal(store.get(3)["w"], torch.ones(2))
    (tmp_path / "front" / ".epoch_0009.pt.abc.tmp").write_bytes(b"half")
    store.prune({7})
    assert sorted(p.name for p in (tmp_path / "front").iterdir()) == ["epoch_0007.pt"]
    with pytest.raises(ValueError, match="epoch 3 is missing"):
        store.get(3)
    store.drop(7)
    assert not any((tmp_path / "front").iterdir())
    memory = FrontStore()
    memory.put(1, {"w": 1})
    memory.prune(set())
    with pytest.raises(KeyError):
        memory.get(1)


def _png_ok(path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


def _tiny_ir(name="tiny"):
    from hgq_rtl.ir import DenseLayer, IRModel, TensorFormat

    layer = DenseLayer(
        name="fc0",
        weight=np.array([[3, -5, 0], [1, 12, 7]]),
        weight_frac_bits=np.zeros((2, 3), np.int64),
        bias=np.zeros(2, np.int64),
        bias_frac_bits=np.zeros(2, np.int64),
        output=TensorFormat(np.ones(2, bool), np.full(2, 8), np.zeros(2, np.int64)),
    )
    inputs = TensorFormat(np.zeros(3, bool), np.full(3, 4), np.zeros(3, np.int64))
    return IRModel(name, inputs, (layer,))


def test_write_front_tables_irs_and_plot(tmp_path):
    from hgq_rtl.ir import io as ir_io

    rows = [
        FrontRow(4, 1e-5, 0.9, 250.0, 240, 0.89),
        FrontRow(2, 1e-6, 0.8, 120.0, 110, 0.81),
    ]
    stale = tmp_path / "front" / "epoch_0001"
    ir_io.save(_tiny_ir(), stale)  # a point no longer on the front
    paths = write_front(
        tmp_path, [(row, _tiny_ir(f"p{row.epoch}")) for row in rows], "accuracy", True
    )
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "front").iterdir()) == ["epoch_0002", "epoch_0004"]
    assert ir_io.load(tmp_path / "front" / "epoch_0004").name == "p4"
    with open(paths["csv"], newline="") as file:
        table = list(csv.DictReader(file))
    assert [r["epoch"] for r in table] == ["2", "4"]  # cheapest exact EBOPs first
    assert table[0]["reference_accuracy"] == "0.81" and table[0]["exact_ebops"] == "110"
    document = json.loads(paths["json"].read_text())
    assert document["metric"] == "accuracy" and document["higher_is_better"] is True
    assert document["points"] == front_records(
        sorted(rows, key=lambda r: r.exact_ebops), "accuracy"
    )
    assert document["points"][1]["model"] == "front/epoch_0004"
    _png_ok(paths["png"])


def test_front_plot_of_an_empty_front(tmp_path):
    _png_ok(plot_front([], "resolution", tmp_path / "f.png"))


def test_weight_bit_plots(tmp_path):
    ir = _tiny_ir()
    [(name, bits)] = layer_weight_bits(ir)
    assert name == "fc0" and bits.tolist() == [[2, 3, 0], [1, 2, 3]]  # bit spans, 0 pruned
    conv = SimpleNamespace(name="conv", weight=np.arange(24).reshape(2, 3, 4))
    pool = SimpleNamespace(name="pool")
    fake = SimpleNamespace(name="m", layers=(conv, pool, ir.layers[0]))
    shapes = [(n, b.shape) for n, b in layer_weight_bits(fake)]
    assert shapes == [("conv", (2, 12)), ("fc0", (2, 3))]
    histogram = _png_ok(plot_bits_histogram(fake, tmp_path / "h.png"))
    heatmap = _png_ok(plot_bits_heatmap(fake, tmp_path / "m.png"))
    assert heatmap.shape[0] > histogram.shape[0]  # one panel per layer

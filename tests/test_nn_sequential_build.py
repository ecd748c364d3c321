"""Sequential([...]) builds (and, under a WaferStrategy, places) once for the whole list,
not once per layer: placing a transformer's layers five times over took most of
`wsekern train transformer`'s set-up."""
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L


def test_a_list_is_placed_once_and_each_add_after_places_again(monkeypatch):
    calls = []
    place = nn.WaferStrategy.place
    monkeypatch.setattr(nn.WaferStrategy, "place",
                        lambda self, model, *a, **k: calls.append(len(model.layers))
                        or place(self, model, *a, **k))
    with nn.WaferStrategy(wk.WaferConfig.small(16, 16)).scope():
        model = nn.Sequential([L.Dense(16, activation="relu", input_shape=(8,)),
                               L.Dense(16, activation="relu"), L.Dense(4)])
        assert calls == [3]
        model.add(L.Dense(2))
        assert calls == [3, 4]
    assert [l.built for l in model.layers] == [True] * 4


def test_a_bad_layer_in_the_list_still_fails_at_construction():
    with pytest.raises(ValueError):
        nn.Sequential([L.Dense(4, input_shape=(8,)), L.Conv2D(2, 3)])

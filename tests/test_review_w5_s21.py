"""Review of wafer21 (session 21): the event engine's round-robin arbitration between
colours that wait for one router out-port, held to a reference of the rule itself."""
import pickle

import numpy as np
import pytest

from wsekern import Wafer, WaferConfig
from wsekern._event import Colour, Engine, Mode, Port
from wsekern.wafer import event

N, E, S, W, RAMP = Port.NORTH, Port.EAST, Port.SOUTH, Port.WEST, Port.RAMP


def _cfg():
    # no turn cost: every colour reaches the shared port one wavelet a cycle
    return WaferConfig.wse3(dtype="fp32").with_(turn_cycles=0.0)


def _port_order(lengths, far, arb):
    """The colours, in the order they cross PE (0, 2)'s west port, of a 3 x C grid where
    colour 0 is (0, 2)'s own vector, colour 1 comes from (0, 2 + far[1]) along row 0 and
    colour 2 from (far[2], 2) up column 2, each of lengths[c] wavelets (0: not sent). At
    (0, 1) each colour leaves by a port of its own (0: ramp, 1: south, 2: west), so the link
    counts there, cycle by cycle, name the colour that crossed."""
    cfg = _cfg()
    R, C = 3 + far[2], 3 + far[1]
    X, NC = 2, 3
    params = event._params(cfg, rounds=1, mode=Mode.MODE_NONE)
    params["arbitration"] = arb
    eng = Engine(R, C, NC, 64, params)
    rt = event._Routes(R, C, NC)
    send = np.full(R * C, Colour.NO_COLOUR, np.int32)
    lens = np.zeros(R * C, np.int64)
    srcs = {0: X, 1: X + far[1], 2: X + far[2] * C}
    if lengths[0]:
        rt.set(X, 0, RAMP, [W])
    if lengths[1]:
        rt.set(srcs[1], 1, RAMP, [W])
        for p in range(X, srcs[1]):
            rt.set(p, 1, E, [W])
    if lengths[2]:
        rt.set(srcs[2], 2, RAMP, [N])
        for p in range(X + C, srcs[2], C):
            rt.set(p, 2, S, [N])
        rt.set(X, 2, S, [W])
    for c in range(3):
        if lengths[c]:
            send[srcs[c]], lens[srcs[c]] = c, lengths[c]
    rt.set(1, 0, E, [RAMP])
    rt.set(1, 1, E, [S])
    rt.set(1 + C, 1, N, [RAMP])
    rt.set(1, 2, E, [W])
    rt.set(0, 2, E, [RAMP])
    eng.set_routes(rt.tx.ravel(), rt.rx.ravel(), np.ones(NC, np.uint8))
    eng.set_reduction(np.zeros(R * C + 1, np.int64), np.zeros(0, np.int32), send, lens,
                      np.ones((R * C, 2, max(lengths))))
    eng.set_output(np.zeros(1), np.zeros(R, np.int64), 0, 0)
    out, prev = [], np.zeros(3, np.int64)

    def seen(_):
        lc = eng.stats()["link_count"]
        now = np.array([lc[0, 1, 4], lc[0, 1, 2], lc[0, 1, 3]])
        step = now - prev
        assert step.sum() <= 1, step            # one wavelet a cycle leaves (0, 1)
        if step.sum():
            out.append(int(np.argmax(step)))
        prev[:] = now
    eng.run(progress=seen, every=1)
    assert eng.check_drained() == (1, 1)
    assert sorted(out) == sorted(c for c in range(3) for _ in range(lengths[c]))
    return out


def _reference(lengths, far):
    """The rule itself: colour c's wavelet j is at the port at a + far[c] * hop + j (each
    source pushes one a cycle; nothing else slows them); each cycle the port takes one
    waiting colour, the first after its last user in colour order (round-robin)."""
    hop = _cfg().hop_cycles
    dist = (0, far[1], far[2])
    left = list(lengths)
    sent = [0, 0, 0]
    last, t, out = -1, 0, []
    while any(left):
        ready = [c for c in range(3) if left[c] and dist[c] * hop + sent[c] <= t]
        if ready:
            c = min(ready, key=lambda c: (c - last - 1) % 3)
            out.append(c)
            left[c] -= 1
            sent[c] += 1
            last = c
        t += 1
    return out


@pytest.mark.parametrize("lengths,far,expected", [
    # two colours: 0 alone for a hop (2 cycles), then in turn from 1 (0 was last)
    ((4, 4, 0), (0, 1, 0), [0, 0, 1, 0, 1, 0, 1, 1]),
    # three colours, 1 and 2 arriving together: 1, 2, 0 in turn; 0 empties first and is
    # skipped
    ((4, 4, 4), (0, 1, 1), [0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 2]),
])
def test_round_robin_gives_a_shared_port_in_turn(lengths, far, expected):
    """Closed-form orders (the colour after the port's last user first): fails on
    'colour-order', where the higher colour always wins (1, 1, 1, 1 in a row)."""
    assert _reference(lengths, far) == expected
    assert _port_order(lengths, far, "round-robin") == expected
    assert _port_order(lengths, far, "colour-order") != expected


@pytest.mark.parametrize("lengths,far", [((3, 5, 2), (0, 1, 2)), ((1, 6, 6), (0, 2, 1)),
                                         ((6, 1, 6), (0, 1, 3)), ((5, 5, 5), (0, 3, 3)),
                                         ((2, 2, 7), (0, 2, 2)), ((7, 3, 1), (0, 1, 1))])
def test_round_robin_matches_the_rule_over_arrivals_and_gaps(lengths, far):
    """Unequal arrivals and lengths, colours that empty and come back after a gap (the
    port's pointer kept across idle cycles): the engine's order is the reference's."""
    assert _port_order(lengths, far, "round-robin") == _reference(lengths, far)


def test_round_robin_is_deterministic_and_survives_a_pickled_config():
    """The same run twice gives the same cycles and Y; a pickled and restored config
    too (the arbitration is a module setting, not part of the config)."""
    cfg = WaferConfig.wse2(rows=16, cols=16, dtype="fp16").with_(link_wavelets_per_cycle=0.5)
    rng = np.random.default_rng(5)
    W = (rng.random((24, 12)) < 0.4) * rng.standard_normal((24, 12))
    X = rng.standard_normal((12, 5))
    runs = []
    for c in (cfg, cfg, pickle.loads(pickle.dumps(cfg))):
        for mapping in ("weight-stationary", "activation-stationary"):
            Y, rep = Wafer(c).spmm(W, X, mapping=mapping, region=(3, 2), mode="event")
            runs.append((mapping, rep.cycles, Y))
    for a, b in zip(runs[:2], runs[2:4]):
        assert a[1] == b[1]
        np.testing.assert_array_equal(a[2], b[2])
    for a, b in zip(runs[:2], runs[4:]):
        assert a[1] == b[1]
        np.testing.assert_array_equal(a[2], b[2])


_TWO_PORTS = """
import numpy as np
from wsekern import WaferConfig
from wsekern._event import Engine, Port, Mode, Colour
from wsekern.wafer import event
N, E, S, W, RAMP = Port.NORTH, Port.EAST, Port.SOUTH, Port.WEST, Port.RAMP
k = {k}
cfg = WaferConfig.wse3(dtype="fp32").with_(hop_cycles=1.0)
R, C, NC = 3, k + 2, 3
X = C + k
params = event._params(cfg, rounds=1, mode=Mode.MODE_NONE)
params["arbitration"] = "{arb}"
eng = Engine(R, C, NC, 64, params)
rt = event._Routes(R, C, NC)
rt.set(X, 0, RAMP, [E, S])
rt.set(C, 1, RAMP, [E])
for j in range(1, k):
    rt.set(C + j, 1, W, [E])
rt.set(X, 1, W, [E, S])
rt.set(k, 2, RAMP, [S])
rt.set(X, 2, N, [E])
for c in range(3):
    rt.set(X + 1, c, W, [RAMP])
for c in range(2):
    rt.set(X + C, c, N, [RAMP])
eng.set_routes(rt.tx.ravel(), rt.rx.ravel(), np.ones(NC, np.uint8))
send = np.full(R * C, Colour.NO_COLOUR, np.int32)
send[X], send[C], send[k] = 0, 1, 2
lens = np.zeros(R * C, np.int64)
lens[X] = lens[C] = lens[k] = 20
eng.set_reduction(np.zeros(R * C + 1, np.int64), np.zeros(0, np.int32), send, lens,
                  np.ones((R * C, 2, 20)))
eng.set_output(np.zeros(1), np.zeros(R, np.int64), 0, 0)
eng.run()
assert eng.check_drained() == (1, 1)
print(eng.stats()["link_count"].reshape(R, C, 6)[1, k, :5].tolist())
"""


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("arb", ["round-robin", "colour-order"])
def test_two_colours_sharing_two_ports_do_not_wait_for_each_other(k, arb):
    """Colours 0 and 1 both leave a PE by E and S (a multicast), colour 2 by E only: with
    E's last user 2 and S's 0 when 0 and 1 are both ready, 1 gave E to 0 and 0 gave S to
    1, each waking the other in the same cycle for ever (the engine hung; k = 2, 4: colour
    1's path makes it arrive so). In a child process with a timeout: it must finish, every
    wavelet crossing (E: 20 of each colour; S: 20 of colours 0 and 1)."""
    import subprocess
    import sys
    try:
        done = subprocess.run([sys.executable, "-c", _TWO_PORTS.format(k=k, arb=arb)],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the engine did not finish in 60 s (k={k}, {arb}): a livelock")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "[0, 60, 40, 0, 0]"


@pytest.mark.parametrize("NC", [3, 256, 257, 300])
def test_round_robin_holds_with_hundreds_of_colours_on_one_port(NC):
    """The colours routed out through one port were counted in a byte: 256 of them counted
    0, 257 counted 1, and the port was taken for uncontended, the higher colour always
    first. Here NC colours are routed out by PE (0, 1)'s west port and two send: colour 0
    (its own, 4 wavelets) and colour NC - 1 (from (0, 2), a hop later, 4): in turn."""
    cfg = _cfg()
    R, C, X = 2, 3, 1
    params = event._params(cfg, rounds=1, mode=Mode.MODE_NONE)
    eng = Engine(R, C, NC, 16, params)
    rt = event._Routes(R, C, NC)
    hi = NC - 1
    for c in range(NC):
        rt.set(X, c, RAMP if c == 0 else E, [W])
    rt.set(2, hi, RAMP, [W])
    rt.set(0, 0, E, [RAMP])                 # at (0, 0): colour 0 to the ramp, hi south
    rt.set(0, hi, E, [S])
    rt.set(C, hi, N, [RAMP])
    eng.set_routes(rt.tx.ravel(), rt.rx.ravel(), np.ones(NC, np.uint8))
    send = np.full(R * C, Colour.NO_COLOUR, np.int32)
    send[X], send[2] = 0, hi
    lens = np.zeros(R * C, np.int64)
    lens[X] = lens[2] = 4
    eng.set_reduction(np.zeros(R * C + 1, np.int64), np.zeros(0, np.int32), send, lens,
                      np.ones((R * C, 2, 4)))
    eng.set_output(np.zeros(1), np.zeros(R, np.int64), 0, 0)
    out, prev = [], np.zeros(2, np.int64)

    def seen(_):
        lc = eng.stats()["link_count"]
        now = np.array([lc[0, 0, 4], lc[0, 0, 2]])
        step = now - prev
        assert step.sum() <= 1, step
        if step.sum():
            out.append(0 if step[0] else hi)
        prev[:] = now
    eng.run(progress=seen, every=1)
    assert eng.check_drained() == (1, 1)
    assert out == [0, 0, hi, 0, hi, 0, hi, hi]

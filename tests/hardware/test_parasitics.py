"""Line resistance / IR drop of a crossbar tile: every solver against physics.

The references are written independently of ``analogebl.hardware.parasitics``: Ohm's law for
one cell, a ladder network reduced by hand for one row, and a dense Kirchhoff solve that
stamps every branch of the netlist in a loop. Tolerances are relative to ``max |I|``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogebl.hardware.parasitics import (
    LineResistance,
    cell_conductance,
    decoupled_conductance,
    effective_conductance,
    line_column_currents,
    nodal_column_currents,
    solve_nodal,
)

METHODS = ("cg", "alternating")


def rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def dense_kcl(G, v, r_wire, r_row, r_col, r_access):
    """Column and source currents of the tile from Kirchhoff's current law, stamped branch by
    branch into a dense matrix (every resistance > 0). Unknowns: the row node (i, j) is
    ``i C + j``, the column node ``R C + i C + j``."""
    R, C = G.shape
    n = 2 * R * C
    Y = np.zeros((n, n))
    rhs = np.zeros(n)

    def branch(a, b, g):  # b = None: to a node held at 0 V
        Y[a, a] += g
        if b is not None:
            Y[b, b] += g
            Y[a, b] -= g
            Y[b, a] -= g

    def row(i, j):
        return i * C + j

    def col(i, j):
        return R * C + i * C + j

    for i in range(R):
        for j in range(C):
            branch(row(i, j), col(i, j), 1.0 / (r_access + 1.0 / G[i, j]))
            if j + 1 < C:
                branch(row(i, j), row(i, j + 1), 1.0 / r_wire)
            if i + 1 < R:
                branch(col(i, j), col(i + 1, j), 1.0 / r_wire)
        branch(row(i, 0), None, 1.0 / r_row)  # the source: Norton form v/r into the node
        rhs[row(i, 0)] += v[i] / r_row
    for j in range(C):
        branch(col(R - 1, j), None, 1.0 / r_col)
    V = np.linalg.solve(Y, rhs)
    columns = np.array([V[col(R - 1, j)] / r_col for j in range(C)])
    sources = np.array([(v[i] - V[row(i, 0)]) / r_row for i in range(R)])
    return columns, sources


def random_tile(rng, R, C, lo=1e-6, hi=1e-5):
    return rng.uniform(lo, hi, (R, C))


# ---------------------------------------------------------------- the description


def test_line_resistance_is_validated_and_frozen():
    lines = LineResistance(r_wire_ohm=2, r_access_ohm=np.float32(100))
    assert lines.r_wire_ohm == 2.0 and isinstance(lines.r_wire_ohm, float)
    assert not lines.ideal and LineResistance().ideal
    with pytest.raises(dataclasses.FrozenInstanceError):
        lines.r_wire_ohm = 1.0
    for bad in (-1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="r_col_terminal_ohm"):
            LineResistance(r_col_terminal_ohm=bad)


def test_inputs_are_validated():
    G = np.full((3, 4), 1e-5)
    lines = LineResistance(1.0)
    with pytest.raises(ValueError, match="G_S"):
        nodal_column_currents(np.ones(3), np.ones(3), lines)
    with pytest.raises(ValueError, match="G_S"):
        line_column_currents(-G, np.ones(3), lines)
    with pytest.raises(ValueError, match="v_V"):
        line_column_currents(G, np.ones(4), lines)
    with pytest.raises(ValueError, match="v_V"):
        nodal_column_currents(G, np.full(3, np.nan), lines)
    with pytest.raises(ValueError, match="lines"):
        effective_conductance(G, 1.0)
    with pytest.raises(ValueError, match="method"):
        line_column_currents(G, np.ones(3), lines, method="jacobi")
    with pytest.raises(ValueError, match="tol"):
        line_column_currents(G, np.ones(3), lines, tol=0.0)
    with pytest.raises(ValueError, match="method"):
        effective_conductance(G, lines, method="lu")


# ---------------------------------------------------------------- analytic circuits


def test_ideal_lines_give_v_at_G_exactly():
    rng = np.random.default_rng(0)
    G = random_tile(rng, 7, 5)
    v = rng.uniform(-0.5, 0.5, (3, 7))
    lines = LineResistance()
    expect = v @ G
    assert rel_err(nodal_column_currents(G, v, lines), expect) < 1e-12
    current, sweeps = line_column_currents(G, v, lines)
    assert rel_err(current, expect) < 1e-12 and sweeps == 0
    G_eff = effective_conductance(G, lines)
    assert np.array_equal(G_eff, G) and G_eff is not G


@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_row_terminal_ohm=3e3, r_col_terminal_ohm=7e3, r_access_ohm=2e4),
        LineResistance(r_wire_ohm=5.0, r_row_terminal_ohm=30.0),
        LineResistance(r_col_terminal_ohm=50.0),
        LineResistance(r_access_ohm=1e4),
    ],
)
def test_one_cell_is_a_series_circuit(lines):
    G, v = 4e-5, 0.3
    r_total = lines.r_row_terminal_ohm + lines.r_access_ohm + 1.0 / G + lines.r_col_terminal_ohm
    expect = np.array([v / r_total])
    assert rel_err(nodal_column_currents([[G]], [v], lines), expect) < 1e-13
    for method in METHODS:
        current, _ = line_column_currents([[G]], [v], lines, method=method)
        assert rel_err(current, expect) < 1e-13
    assert rel_err(effective_conductance([[G]], lines)[0], expect / v) < 1e-13


@pytest.mark.parametrize("r_row, r_col", [(0.0, 0.0), (20.0, 0.0), (0.0, 40.0), (20.0, 40.0)])
def test_one_row_is_a_ladder(r_row, r_col):
    """1 x C: the row is a ladder of wire segments shunted by cell + column terminal.
    Reduced by hand: Y_k, the admittance looking into node k towards the free end,
    Y_{C-1} = y_{C-1}, Y_k = y_k + 1 / (r_wire + 1 / Y_{k+1}); then the node voltages by
    voltage division, V_0 = v (1/Y_0) / (r_row + 1/Y_0),
    V_{k+1} = V_k (1/Y_{k+1}) / (r_wire + 1/Y_{k+1}), and I_k = y_k V_k."""
    rng = np.random.default_rng(1)
    C, r_wire, r_access, v = 24, 50.0, 2e3, 0.4
    G = rng.uniform(1e-5, 1e-3, (1, C))
    y = 1.0 / (r_access + 1.0 / G[0] + r_col)
    Y = np.empty(C)
    Y[-1] = y[-1]
    for k in range(C - 2, -1, -1):
        Y[k] = y[k] + 1.0 / (r_wire + 1.0 / Y[k + 1])
    V = np.empty(C)
    V[0] = v * (1.0 / Y[0]) / (r_row + 1.0 / Y[0])
    for k in range(C - 1):
        V[k + 1] = V[k] * (1.0 / Y[k + 1]) / (r_wire + 1.0 / Y[k + 1])
    expect = y * V
    assert rel_err(expect, v * y) > 1e-2  # the drop is large
    lines = LineResistance(r_wire, r_row, r_col, r_access)
    assert rel_err(nodal_column_currents(G, [v], lines), expect) < 1e-12
    for method in METHODS:
        current, _ = line_column_currents(G, [v], lines, method=method)
        assert rel_err(current, expect) < 1e-10
    assert rel_err(v * effective_conductance(G, lines)[0], expect) < 1e-12


@pytest.mark.parametrize("r_row, r_col", [(0.0, 0.0), (20.0, 0.0), (0.0, 40.0), (20.0, 40.0)])
def test_one_column_matches_its_kirchhoff_equations(r_row, r_col):
    """R x 1: every row is one node, so row i reaches column node i through
    ``y_i = 1 / (r_row + r_access + 1/G_i)``; the column is a chain to ground. KCL at the
    column nodes, written as a tridiagonal matrix and solved densely."""
    rng = np.random.default_rng(2)
    R, r_wire, r_access = 20, 30.0, 1e3
    G = rng.uniform(1e-5, 1e-3, (R, 1))
    v = rng.uniform(0.0, 0.5, R)
    y = 1.0 / (r_row + r_access + 1.0 / G[:, 0])
    g_w = 1.0 / r_wire
    K = np.diag(y) + g_w * (2 * np.eye(R) - np.eye(R, k=1) - np.eye(R, k=-1))
    K[0, 0] -= g_w  # the top node has one wire
    if r_col:
        K[-1, -1] += 1.0 / r_col - g_w  # the bottom node: one wire and the terminal
        w = np.linalg.solve(K, y * v)
        expect = np.array([w[-1] / r_col])
    else:  # the bottom node is the ground: drop it, the current comes in by wire and cell
        w = np.linalg.solve(K[:-1, :-1], (y * v)[:-1])
        expect = np.array([g_w * w[-1] + y[-1] * v[-1]])
    lines = LineResistance(r_wire, r_row, r_col, r_access)
    assert rel_err(nodal_column_currents(G, v, lines), expect) < 1e-12
    for method in METHODS:
        current, _ = line_column_currents(G, v, lines, method=method)
        assert rel_err(current, expect) < 1e-10
    assert rel_err(v @ effective_conductance(G, lines), expect) < 1e-12


# ---------------------------------------------------------------- the oracle


@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_wire_ohm=50.0, r_row_terminal_ohm=20.0, r_col_terminal_ohm=40.0),
        LineResistance(
            r_wire_ohm=3.0, r_row_terminal_ohm=1e3, r_col_terminal_ohm=5.0, r_access_ohm=2e3
        ),
    ],
)
def test_oracle_matches_dense_kirchhoff(lines):
    rng = np.random.default_rng(3)
    G = rng.uniform(1e-5, 1e-3, (4, 5))
    v = rng.uniform(-0.5, 0.5, 4)
    columns, sources = dense_kcl(G, v, *dataclasses.astuple(lines))
    sol = solve_nodal(G, v, lines)
    assert rel_err(sol.column_currents_A[0], columns) < 1e-12
    assert rel_err(sol.source_currents_A[0], sources) < 1e-12
    assert rel_err(nodal_column_currents(G, v, lines), columns) < 1e-12


@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_wire_ohm=10.0),
        LineResistance(r_wire_ohm=10.0, r_row_terminal_ohm=5.0, r_access_ohm=1e3),
        LineResistance(r_row_terminal_ohm=5.0, r_col_terminal_ohm=7.0),
        LineResistance(r_wire_ohm=2.0, r_row_terminal_ohm=5.0, r_col_terminal_ohm=7.0),
    ],
)
def test_kirchhoff_current_law_holds(lines):
    """What the sources deliver reaches the virtual grounds; and at every free row node the
    wire and cell currents of the solved voltages sum to 0."""
    rng = np.random.default_rng(4)
    G = rng.uniform(1e-5, 1e-3, (6, 7))
    v = rng.uniform(-0.5, 0.5, (3, 6))
    sol = solve_nodal(G, v, lines)
    total = sol.column_currents_A.sum(axis=1)
    assert np.allclose(sol.source_currents_A.sum(axis=1), total, rtol=1e-11, atol=0)
    if lines.r_wire_ohm and lines.r_row_terminal_ohm:
        u, w = sol.row_voltages_V, sol.column_voltages_V
        g = cell_conductance(G, lines.r_access_ohm)
        out = g * (u - w)  # out of every row node: cell, left wire, right wire, source
        out[:, :, 1:] += (u[:, :, 1:] - u[:, :, :-1]) / lines.r_wire_ohm
        out[:, :, :-1] += (u[:, :, :-1] - u[:, :, 1:]) / lines.r_wire_ohm
        out[:, :, 0] += (u[:, :, 0] - v) / lines.r_row_terminal_ohm
        assert np.max(np.abs(out)) < 1e-12 * np.max(np.abs(total))


def test_open_cells_carry_no_current():
    rng = np.random.default_rng(5)
    G = random_tile(rng, 6, 5)
    G[:, 2] = 0.0
    v = rng.uniform(0.0, 0.5, 6)
    lines = LineResistance(10.0, 2.0, 3.0, 100.0)
    assert nodal_column_currents(G, v, lines)[2] == 0.0
    assert line_column_currents(G, v, lines)[0][2] == 0.0
    assert np.all(effective_conductance(G, lines)[:, 2] == 0.0)


# ---------------------------------------------------------------- the fast solver


@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_wire_ohm=0.35),
        LineResistance(r_wire_ohm=2.1),
        LineResistance(r_wire_ohm=10.0),
        LineResistance(
            r_wire_ohm=10.0, r_row_terminal_ohm=50.0, r_col_terminal_ohm=20.0, r_access_ohm=5e3
        ),
        LineResistance(r_wire_ohm=10.0, r_col_terminal_ohm=20.0),
        LineResistance(r_wire_ohm=10.0, r_row_terminal_ohm=50.0),
        LineResistance(r_row_terminal_ohm=50.0, r_col_terminal_ohm=20.0),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_fast_solver_matches_oracle(lines, method):
    """32 x 32, G uniform in [1e-6, 1e-5] S: agreement to 1e-9 of max|I| (the stopping rule
    bounds the error by tol = 1e-10 of max|I|; the oracle's own rounding is ~1e-13)."""
    rng = np.random.default_rng(6)
    G = random_tile(rng, 32, 32)
    v = rng.uniform(0.0, 0.5, (4, 32))
    oracle = nodal_column_currents(G, v, lines)
    assert rel_err(oracle, v @ G) > 1e-4  # there is an IR drop to get right
    current, sweeps = line_column_currents(G, v, lines, method=method)
    assert current.shape == (4, 32)
    assert rel_err(current, oracle) < 1e-9
    assert sweeps <= (12 if method == "cg" else 40)
    one, _ = line_column_currents(G, v[1], lines, method=method)
    assert one.shape == (32,) and rel_err(one, oracle[1]) < 1e-9


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_stopping_rule_bounds_the_error(method, tol):
    """The residual bound is rigorous: a loose tol still gives |error| <= tol max|I|."""
    rng = np.random.default_rng(7)
    G = random_tile(rng, 48, 40, hi=3e-5)
    v = rng.uniform(0.0, 0.5, (3, 48))
    lines = LineResistance(r_wire_ohm=10.0, r_row_terminal_ohm=5.0)
    oracle = nodal_column_currents(G, v, lines)
    current, _ = line_column_currents(G, v, lines, tol=tol, method=method)
    error = np.max(np.abs(current - oracle), axis=1)
    assert np.all(error <= tol * np.max(np.abs(oracle), axis=1))


def test_too_few_sweeps_warn():
    rng = np.random.default_rng(8)
    G = random_tile(rng, 32, 32)
    with pytest.warns(RuntimeWarning, match="not reached"):
        line_column_currents(G, np.full(32, 0.3), LineResistance(10.0), max_sweeps=2)


# ---------------------------------------------------------------- effective conductance


@pytest.mark.parametrize("shape", [(24, 24), (9, 16), (16, 9)])
@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_wire_ohm=10.0),
        LineResistance(
            r_wire_ohm=2.1, r_row_terminal_ohm=30.0, r_col_terminal_ohm=60.0, r_access_ohm=1e3
        ),
        LineResistance(r_wire_ohm=2.1, r_col_terminal_ohm=60.0),
        LineResistance(r_row_terminal_ohm=30.0, r_col_terminal_ohm=60.0),
        LineResistance(r_access_ohm=1e3),
    ],
)
def test_effective_conductance_reproduces_the_currents(shape, lines):
    rng = np.random.default_rng(9)
    G = rng.uniform(1e-6, 1e-4, shape)
    v = rng.uniform(-0.5, 0.5, (5, shape[0]))
    oracle = nodal_column_currents(G, v, lines)
    G_eff = effective_conductance(G, lines)
    assert G_eff.shape == shape
    assert rel_err(v @ G_eff, oracle) < 1e-11
    fast, _ = line_column_currents(G, v, lines)
    assert rel_err(v @ G_eff, fast) < 1e-9
    G_cg = effective_conductance(G, lines, method="cg", block=7)
    assert rel_err(G_cg, G_eff) < 1e-9


# ---------------------------------------------------------------- what IR drop does


def test_ir_drop_only_shrinks_currents_and_grows_with_wire_resistance():
    """For v >= 0 every node lies between 0 V and max v: 0 <= I <= v @ G. With held
    terminals each column current falls as r_wire grows; with terminal resistances single
    columns may not (the source's terminal drop shrinks with the total current), but the
    delivered power sum_i v_i I_src,i does (Thomson's principle)."""
    rng = np.random.default_rng(10)
    G = random_tile(rng, 24, 20, hi=1e-4)
    v = rng.uniform(0.0, 0.5, (3, 24))
    wires = [0.0, 0.35, 2.1, 10.0, 50.0]
    held = np.array([line_column_currents(G, v, LineResistance(r))[0] for r in wires])
    assert np.all(held >= 0) and np.all(held <= v @ G * (1 + 1e-12))
    assert np.all(np.diff(held, axis=0) < 0)
    power = []
    for r in wires:
        sol = solve_nodal(G, v, LineResistance(r, 20.0, 40.0, 1e3))
        assert np.all(sol.column_currents_A >= 0)
        assert np.all(sol.column_currents_A <= v @ G)
        power.append(np.sum(v * sol.source_currents_A, axis=1))
    assert np.all(np.diff(power, axis=0) < 0)


# ---------------------------------------------------------------- decoupled lines


@pytest.mark.parametrize("shape", [(1, 23), (19, 1), (1, 1)])
@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(r_wire_ohm=30.0),
        LineResistance(r_wire_ohm=30.0, r_row_terminal_ohm=20.0),
        LineResistance(r_wire_ohm=30.0, r_col_terminal_ohm=40.0, r_access_ohm=1e3),
        LineResistance(
            r_wire_ohm=30.0, r_row_terminal_ohm=20.0, r_col_terminal_ohm=40.0, r_access_ohm=2e3
        ),
        LineResistance(r_row_terminal_ohm=20.0, r_col_terminal_ohm=40.0),
    ],
)
def test_decoupled_model_is_exact_for_one_row_or_one_column(shape, lines):
    """A single row (its columns are one node each) and a single column (its rows are one
    node each) are isolated lines: the decoupled model is the exact solve."""
    G = np.random.default_rng(11).uniform(1e-5, 1e-3, shape)
    exact = effective_conductance(G, lines)
    assert rel_err(decoupled_conductance(G, lines), exact) < 1e-13
    if G.size > 1:
        assert rel_err(exact, G) > 1e-2  # a real drop


def test_decoupled_model_is_each_cells_own_path():
    """In a tile, ``G_eff[k, l]`` as a function of ``g_kl`` alone is ``c + g A / (1 + g Z)``;
    the decoupled model's ``A`` and ``Z`` are the exact ones (module docstring), so it gives
    exactly what the cell itself adds: ``G_eff(g) - G_eff(0) = G_dec(g)`` at that entry, to
    the few 1e-4 the lines' coupling leaves in ``A`` and ``Z``, while the rest ``c`` (the
    current through the other cells) is several % of ``G_eff``. (40 x 40 at 10 ohm: a drop
    of 26 %; the own-path error grows with the drop, 0.45 % at 25 ohm where ``c`` is 20 %.)"""
    rng = np.random.default_rng(12)
    G0 = rng.uniform(1.3e-5, 5.9e-5, (40, 40))  # pessimistic's range
    lines = LineResistance(r_wire_ohm=10.0)
    exact0 = effective_conductance(G0, lines)
    assert np.mean(1 - exact0 / G0) > 0.2
    coupling = []
    for k, l in [(3, 35), (20, 20), (37, 4), (0, 0), (39, 39)]:
        G = G0.copy()
        G[k, l] = 0.0
        base = effective_conductance(G, lines)[k, l]
        coupling.append(base / exact0[k, l])
        for g in (G0[k, l], 2.0 * G0[k, l]):
            G[k, l] = g
            own = effective_conductance(G, lines)[k, l] - base
            assert abs(decoupled_conductance(G, lines)[k, l] / own - 1) < 1e-3, (k, l)
    assert max(coupling) > 0.04


def test_decoupled_model_stacks_and_pads():
    """A stack of tiles is each tile on its own; zero rows above a tile and zero columns to
    its right (dangling wire) change nothing, bit for bit; open cells carry nothing."""
    rng = np.random.default_rng(13)
    lines = LineResistance(r_wire_ohm=2.1, r_col_terminal_ohm=5.0)
    G = rng.uniform(1e-6, 1e-5, (3, 24, 20))
    stack = decoupled_conductance(G, lines)
    for t in range(3):
        assert np.array_equal(stack[t], decoupled_conductance(G[t], lines))
    padded = np.zeros((32, 28))
    padded[8:, :20] = G[0]
    out = decoupled_conductance(padded, lines)
    assert np.array_equal(out[8:, :20], stack[0])
    assert np.all(out[:8] == 0) and np.all(out[:, 20:] == 0)
    G0 = G[1].copy()
    G0[5], G0[:, 7] = 0.0, 0.0
    out = decoupled_conductance(G0, lines)
    assert np.all(np.isfinite(out)) and np.all(out[5] == 0) and np.all(out[:, 7] == 0)
    assert np.array_equal(decoupled_conductance(G[0], LineResistance()), G[0])
    with pytest.raises(ValueError, match="G_S"):
        decoupled_conductance(-G, lines)
    with pytest.raises(ValueError, match="G_S"):
        decoupled_conductance(np.ones(3), lines)


@pytest.mark.parametrize(
    "lines",
    [
        LineResistance(2.1),
        LineResistance(2.1, 5.0, 3.0, 100.0),
        LineResistance(10.0, 0.0, 7.0),
        LineResistance(0.35, 1.0, 0.0),
    ],
)
def test_numba_line_recursions_equal_the_numpy_recursions(lines):
    """The compiled ladders of :func:`decoupled_conductance` give the NumPy recursions'
    numbers (same operations in the same order), for stacks of tiles with zero-padded rows
    and columns, terminals of 0 ohm (held nodes, 1/0 = inf) and access devices."""
    rng = np.random.default_rng(7)
    G = rng.uniform(1e-6, 1e-5, size=(5, 33, 17))
    G[1, :4] = 0.0  # padding above a smaller tile's first row
    G[2, :, -3:] = 0.0  # and right of its last column
    fast = decoupled_conductance(G, lines)
    slow = decoupled_conductance(G, lines, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-14, atol=0)
    assert np.all(fast[1, :4] == 0) and np.all(fast <= G)

"""③ Line resistance (IR drop) of a resistive crossbar tile.

The circuit
-----------
A tile of ``R`` rows by ``C`` columns has a row node ``(i, j)`` and a column node ``(i, j)`` at
every crossing.

* Row ``i`` is driven by an ideal voltage source ``v_i`` through ``r_row_terminal_ohm`` into
  row node ``(i, 0)``; consecutive row nodes ``(i, j) - (i, j+1)`` are joined by
  ``r_wire_ohm``.
* Column ``j``: consecutive column nodes ``(i, j) - (i+1, j)`` are joined by ``r_wire_ohm``;
  the bottom node ``(R-1, j)`` goes through ``r_col_terminal_ohm`` into a virtual ground
  (0 V, the sense amplifier). The column current ``I_j`` is the current into that virtual
  ground.
* Cell ``(i, j)``: the device conductance ``G_ij`` in series with an access device
  ``r_access_ohm``, i.e. the effective cell conductance

      g_ij = G_ij / (1 + G_ij r_access)                                   [S]

  between row node ``(i, j)`` and column node ``(i, j)``.

A resistance of 0 joins its two nodes into one (a terminal of 0 ohm holds its node at the
source voltage or at ground exactly): such nodes are eliminated, never modelled by a huge
conductance. With every resistance 0 the column currents are ``I = v @ G`` exactly.

The network is linear in the drive, so ``I = v @ G_eff`` exactly for an ``R x C`` effective
conductance :func:`effective_conductance`; ideal lines give ``G_eff = G``.

Two solvers
-----------
:func:`nodal_column_currents` is the oracle: nodal analysis of the whole netlist (the
conductance Laplacian over ``2 R C`` nodes, 0-ohm branches contracted, fixed nodes moved to
the right-hand side), solved by a sparse LU factorisation (``scipy.sparse.linalg.splu``).

:func:`line_column_currents` is the fast solver, the one a circuit simulator uses. Write the
row-node voltages as drops from the drive, ``u_ij = v_i - a_ij``, and the column-node
voltages as ``w_ij``. Kirchhoff's current law at every node reads

    A a = g o (v - w)       (each row line:    A = wire Laplacian + terminal + diag(g))
    K w = g o (v - a)       (each column line: K = wire Laplacian + terminal + diag(g))

(``o`` the elementwise product). ``A`` and ``K`` are tridiagonal, one independent system per
line, and are factorised once (a Thomas / LDL^T factorisation eliminated from the free end of
each line towards its terminal, whose pivots are sums of positive conductances: no
cancellation). Eliminating ``a`` leaves the Schur complement on the column voltages

    S w = g o u0,   S = K - diag(g) A^-1 diag(g),   u0 = v - A^-1 (g o v),

which is symmetric positive definite. Plain alternation of exact row-line and column-line
solves (line Gauss-Seidel, ``method="alternating"``) is the Richardson iteration
``w <- w + K^-1 (g o u0 - S w)``; its error contracts per sweep by ``rho``, the largest
eigenvalue of ``K^-1 diag(g) A^-1 diag(g)``, about ``[g / (g + lambda_r)] [g / (g + lambda_c)]``
with ``lambda ~ (pi / 2n)^2 / r_wire`` the smallest eigenvalue of a wire Laplacian of ``n``
nodes (its smoothest mode). For ``G`` uniform in [1e-6, 1e-5] S, measured: 128 x 128 tiles
``rho = 1.6e-4, 0.005, 0.071`` at ``r_wire = 0.35, 2.1, 10`` ohm; 512 x 512 tiles
``rho = 0.029, 0.30, 0.73``, i.e. 9, 25 and 90 sweeps to ``tol = 1e-10``.
The default ``method="cg"`` accelerates the same sweeps with conjugate gradients on ``S``,
preconditioned by the column-line solve ``K^-1``: one iteration costs one row-line solve and
one column-line solve (one *sweep*), the condition number is at most ``1 / (1 - rho)``, so the
error contracts per sweep by at most ``(1 - sqrt(1 - rho)) / (1 + sqrt(1 - rho))``; in
practice faster, since only a few smooth modes are slow: 6, 9 and 13 sweeps on the 512 x 512
tiles above (4, 5 and 7 on the 128 x 128 ones). A CG sweep does about twice the array work of
a plain one, so ``"alternating"`` is as fast when ``rho`` is small.

Stopping rule (both methods). An iterate satisfies Kirchhoff's law except for a residual
current ``r`` injected at some nodes (the column nodes for CG, the row nodes for the
alternation). The error of the terminal currents is the share of ``r`` that a passive network
with its sources shorted delivers to the virtual grounds, so
``sum_j |I_j - I_j(iterate)| <= ||r||_1``; iteration stops when ``||r||_1 <= tol max_j |I_j|``
for every input vector, which bounds the error of every column current by ``tol`` times the
largest one.

Effective conductance
---------------------
:func:`effective_conductance` needs the currents of all ``R`` unit inputs, which the iterative
solver would pay for with ``R`` right-hand sides of ``2 R C`` unknowns. It eliminates the
lines exactly instead, one row ("layer") at a time from the top. With the row source at 0 V,
row ``i`` delivers into its column nodes the currents ``Y_i (v_i 1 - w_i)`` with

    Y_i = D_i - D_i A_i^-1 D_i   (C x C) [S],   phi_i = Y_i 1,   D_i = diag(g_i,:).

Let ``H_i`` be the conductance matrix of rows ``0..i`` (with their cells and column wires)
seen from the column nodes of row ``i``, and ``J_i`` its short-circuit (Norton) currents into
them. One wire segment ``g_w = 1 / r_wire`` of every column joins row ``i-1`` to row ``i``:

    H_0 = Y_0,   H_i = Y_i + g_w (g_w 1 + H_{i-1})^-1 H_{i-1}                [S]
    J_0 = v_0 phi_0,   J_i = v_i phi_i + g_w (g_w 1 + H_{i-1})^-1 J_{i-1}     [A]

(current dividers: the recursion only adds positive semi-definite terms), and
at the bottom ``I = g_ct (g_ct 1 + H_{R-1})^-1 J_{R-1}``, or ``I = J_{R-1}`` when the columns
end at the virtual ground with 0 ohm. ``J`` is linear in ``v``; carrying its ``R`` columns
(one per unit input) through the recursion gives ``G_eff^T = I``. A Cholesky factorisation
and solve per row: ``~ 2.3 R C^3 + R^2 C^2`` flops, done on the mirrored tile (rows and
columns exchanged and reversed, the same network by reciprocity) when ``C > R``.

Decoupled lines
---------------
:func:`decoupled_conductance` is an ``O(R C)`` model, used to follow ``G_eff`` while the
conductances change between exact solves (``analogebl.hardware.crossbar``). As a function of
one cell's conductance ``g = g_kl`` alone, ``G_eff[k, l]`` of a linear network is a Moebius
function

    G_eff[k, l] = c_kl + g A_kl / (1 + g Z_kl)                                     [S]

with ``Z`` the impedance between the cell's row node and column node (sources at 0 V), ``A``
the open-circuit voltage across the cell per volt on row ``k`` times the fraction of the cell
current that reaches the virtual ground of column ``l``, and ``c_kl`` the current that row
``k`` sends into column ``l`` through the *other* cells. The decoupled model computes ``A`` and
``Z`` from the cell's own row and column lines, the other cells of a line acting as shunts to
ground:

* row ``k`` (positions ``j`` from the driver, shunts ``s_j``): the Thevenin equivalent that
  node ``j`` sees with its own shunt removed, an open-circuit voltage ``E_j`` (per volt) behind
  ``Yr_j = YL_j + YR_j``, from ``YL_0 = g_rt``, ``E'_0 = 1`` and

      E'_{j+1} = E'_j YL_j / (YL_j + s_j),   YL_{j+1} = 1 / (r_wire + 1 / (YL_j + s_j)),
      YR_{C-1} = 0,   YR_j = 1 / (r_wire + 1 / (s_{j+1} + YR_{j+1})),
      E_j = E'_j YL_j / (YL_j + YR_j);

* column ``l`` (positions ``i`` from the top, shunts ``q_i``): the driving-point conductance
  ``Yc_i = U_i + D_i`` with its own shunt removed, and the fraction ``t_i`` of a current
  injected at node ``i`` that reaches the virtual ground,

      U_0 = 0,   U_{i+1} = 1 / (r_wire + 1 / (q_i + U_i)),
      D_{R-1} = g_ct,   D_{i-1} = 1 / (r_wire + 1 / (q_i + D_i)),
      a_R = 1,   a_i = a_{i+1} D_i / (q_i + D_i),   t_i = a_{i+1} D_i / (U_i + D_i);

* ``A = E t``, ``Z = 1 / Yr + 1 / Yc``, and ``G_dec = g E t / (1 + g / Yr + g / Yc)``.

The shunts come from three line passes: rows with ``s = g`` (columns held at 0 V), giving
``Yr``; columns with ``q = g Yr / (g + Yr)`` (each other cell in series with its row line);
rows again with ``s = g Yc / (g + Yc)``. A terminal of 0 ohm is ``g_rt`` or ``g_ct = inf``
(a held node). The model is exact for a single row (``R = 1``: ``Yc = g_ct``, ``t = 1``
whatever ``q``) and a single column (``C = 1``: ``Yr = g_rt``, ``E = 1`` whatever ``s``).
In a tile it is the exact ``A`` and ``Z`` to a few 1e-4 (measured with three exact solves per
cell, ``g_kl`` in {0, g, 2 g}: 20 cells of a 128 x 128 tile at 2.1 ohm with ``G`` in
[1.3e-5, 5.9e-5] S, relative error of ``A`` at most 3.5e-4 and of ``Z`` 1.3e-4; 3e-7 on a
256 x 256 tile at 0.35 ohm with ``G`` in [2.5e-7, 2.5e-5] S): all that it misses is the
coupling ``c``, there up to 13 % (median 2.6 %) of ``G_eff[k, l]``, 4 % of ``||G_eff||``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from analogebl.hardware import kernels as _kernels

__all__ = [
    "LineResistance",
    "NodalSolution",
    "cell_conductance",
    "decoupled_conductance",
    "effective_conductance",
    "line_column_currents",
    "nodal_column_currents",
    "solve_nodal",
]


@dataclass(frozen=True)
class LineResistance:
    """The parasitic resistances of a crossbar tile, in ohm (see the module docstring).

    Parameters
    ----------
    r_wire_ohm : float
        Wire segment between two neighbouring crossings, rows and columns alike.
    r_row_terminal_ohm : float
        From each row's voltage source (driver) to its first node ``(i, 0)``.
    r_col_terminal_ohm : float
        From each column's bottom node ``(R-1, j)`` to the virtual ground.
    r_access_ohm : float
        Access device in series with every cell's conductance.

    Every value must be finite and ``>= 0``; 0 means a perfect connection.
    """

    r_wire_ohm: float = 0.0
    r_row_terminal_ohm: float = 0.0
    r_col_terminal_ohm: float = 0.0
    r_access_ohm: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"LineResistance.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"LineResistance.{f.name} must be finite and >= 0, got {value}")
            object.__setattr__(self, f.name, float(value))

    @property
    def ideal(self) -> bool:
        """True when every resistance is 0: then ``I = v @ G`` exactly."""
        return not (
            self.r_wire_ohm
            or self.r_row_terminal_ohm
            or self.r_col_terminal_ohm
            or self.r_access_ohm
        )


@dataclass(frozen=True)
class NodalSolution:
    """The solved network of :func:`solve_nodal`, for ``B`` input vectors.

    Attributes
    ----------
    column_currents_A : ndarray, shape (B, C)
        Current into each column's virtual ground.
    source_currents_A : ndarray, shape (B, R)
        Current delivered by each row's voltage source.
    row_voltages_V, column_voltages_V : ndarray, shape (B, R, C)
        Voltage of every row node and column node (a node joined to a source or to ground
        by 0 ohm carries that voltage).
    """

    column_currents_A: np.ndarray
    source_currents_A: np.ndarray
    row_voltages_V: np.ndarray
    column_voltages_V: np.ndarray


# ---------------------------------------------------------------- input checks


def _check_conductance(G_S) -> np.ndarray:
    G = np.asarray(G_S, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise ValueError(f"G_S must be a non-empty 2-D array (rows x columns), got shape {G.shape}")
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ValueError("G_S must hold finite conductances >= 0 (siemens)")
    return G


def _check_voltages(v_V, n_rows: int) -> tuple[np.ndarray, bool]:
    """``v_V`` as a (B, R) float64 array, and whether it was given as one vector."""
    v = np.asarray(v_V, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[-1] != n_rows:
        raise ValueError(f"v_V must have shape ({n_rows},) or (B, {n_rows}), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("v_V must be finite (volts)")
    return np.atleast_2d(v), v.ndim == 1


def _check_lines(lines) -> LineResistance:
    if not isinstance(lines, LineResistance):
        raise ValueError(f"lines must be a LineResistance, got {type(lines).__name__}")
    return lines


def cell_conductance(G_S, r_access_ohm: float) -> np.ndarray:
    """Effective conductance of a device in series with its access device.

    ``g = G / (1 + G r_access)`` [S], elementwise; ``G`` itself (a copy) when
    ``r_access_ohm`` is 0.
    """
    G = _check_conductance(G_S)
    if r_access_ohm < 0 or not math.isfinite(r_access_ohm):
        raise ValueError(f"r_access_ohm must be finite and >= 0, got {r_access_ohm}")
    if r_access_ohm == 0:
        return G.copy()
    return G / (1.0 + G * r_access_ohm)


# ---------------------------------------------------------------- the oracle


def solve_nodal(G_S, v_V, lines: LineResistance) -> NodalSolution:
    """Exact nodal analysis of the tile by a sparse direct solve (the oracle).

    The netlist has ``2 R C`` row and column nodes, one source node per row (held at
    ``v_i``) and one ground node per column (held at 0 V). Nodes joined by a 0-ohm branch are
    contracted into one (connected components of the 0-ohm graph). With ``L`` the
    conductance Laplacian of the contracted network, split into free nodes ``f`` and fixed
    nodes ``k``, the free voltages solve

        L_ff V_f = -L_fk V_k                                              [A]

    for all ``B`` input vectors at once (one ``splu`` factorisation). The current into the
    ground of column ``j`` (out of the source of row ``i``) is the sum of ``g (V_a - V_b)``
    over the branches into (out of) that node.

    Parameters
    ----------
    G_S : array_like, shape (R, C)
        Device conductances [S], finite and ``>= 0``.
    v_V : array_like, shape (R,) or (B, R)
        Row drive voltages [V].
    lines : LineResistance

    Returns
    -------
    NodalSolution
        Its arrays have a leading batch axis of length ``B`` (1 for a single vector).
    """
    G = _check_conductance(G_S)
    v, _ = _check_voltages(v_V, G.shape[0])
    lines = _check_lines(lines)
    R, C = G.shape
    B = v.shape[0]
    n_cell = R * C
    g = cell_conductance(G, lines.r_access_ohm)

    # node numbering: row nodes, column nodes, sources, grounds
    node = np.arange(n_cell).reshape(R, C)
    row_n, col_n = node, n_cell + node
    src_n = 2 * n_cell + np.arange(R)
    gnd_n = 2 * n_cell + R + np.arange(C)
    n_nodes = 2 * n_cell + R + C

    # branches (a, b, resistance); cells are given by conductance (g = 0 is an open cell)
    branches = [
        (row_n[:, :-1].ravel(), row_n[:, 1:].ravel(), lines.r_wire_ohm),
        (col_n[:-1, :].ravel(), col_n[1:, :].ravel(), lines.r_wire_ohm),
        (src_n, row_n[:, 0], lines.r_row_terminal_ohm),
        (col_n[-1, :], gnd_n, lines.r_col_terminal_ohm),
    ]
    shorts = [(a, b) for a, b, r in branches if r == 0 and a.size]
    resistive = [(a, b, np.full(a.size, 1.0 / r)) for a, b, r in branches if r > 0 and a.size]
    resistive.append((row_n.ravel(), col_n.ravel(), g.ravel()))
    ea = np.concatenate([a for a, _, _ in resistive])
    eb = np.concatenate([b for _, b, _ in resistive])
    eg = np.concatenate([c for _, _, c in resistive])

    # contract the 0-ohm branches
    if shorts:
        sa = np.concatenate([a for a, _ in shorts])
        sb = np.concatenate([b for _, b in shorts])
        adj = sp.coo_matrix((np.ones(sa.size), (sa, sb)), shape=(n_nodes, n_nodes))
        n_sup, label = connected_components(adj, directed=False)
    else:
        n_sup, label = n_nodes, np.arange(n_nodes)
    la, lb = label[ea], label[eb]
    keep = la != lb
    la, lb, eg = la[keep], lb[keep], eg[keep]

    # fixed supernodes (a source or a ground in them) and their voltages
    src_s, gnd_s = label[src_n], label[gnd_n]
    assert np.unique(np.r_[src_s, gnd_s]).size == R + C, "no 0-ohm path between two ports"
    is_fixed = np.zeros(n_sup, dtype=bool)
    is_fixed[np.r_[src_s, gnd_s]] = True
    free, fixed = np.flatnonzero(~is_fixed), np.flatnonzero(is_fixed)
    V = np.zeros((n_sup, B))
    V[src_s] = v.T

    # weighted adjacency W and Laplacian L = diag(W 1) - W of the contracted network
    W = sp.coo_matrix((np.r_[eg, eg], (np.r_[la, lb], np.r_[lb, la])), shape=(n_sup, n_sup))
    W = W.tocsr()
    degree = np.asarray(W.sum(axis=1)).ravel()
    if free.size:
        lap_f = (sp.diags(degree) - W)[free]
        rhs = -(lap_f[:, fixed] @ V[fixed])
        lu = splu(lap_f[:, free].tocsc(), permc_spec="MMD_AT_PLUS_A")
        V[free] = lu.solve(rhs).reshape(free.size, B)

    # current into a port node s: sum over its branches of g (V_other - V_s)
    def into(s):
        return W[s] @ V - degree[s, None] * V[s]

    return NodalSolution(
        column_currents_A=into(gnd_s).T.copy(),
        source_currents_A=-into(src_s).T.copy(),
        row_voltages_V=V[label[row_n]].transpose(2, 0, 1).copy(),
        column_voltages_V=V[label[col_n]].transpose(2, 0, 1).copy(),
    )


def nodal_column_currents(G_S, v_V, lines: LineResistance) -> np.ndarray:
    """Column currents by exact nodal analysis (:func:`solve_nodal`), the oracle.

    Parameters
    ----------
    G_S : array_like, shape (R, C)
        Device conductances [S].
    v_V : array_like, shape (R,) or (B, R)
        Row drive voltages [V].
    lines : LineResistance

    Returns
    -------
    ndarray, shape (C,) or (B, C)
        Current into each column's virtual ground [A].
    """
    G = _check_conductance(G_S)
    v, single = _check_voltages(v_V, G.shape[0])
    current = solve_nodal(G, v, lines).column_currents_A
    return current[0] if single else current


# ---------------------------------------------------------------- the fast solver


def _terminal_conductance(r_ohm: float) -> float:
    """``1 / r`` [S]; ``inf`` for 0 ohm, which the solvers read as a held node."""
    return math.inf if r_ohm == 0 else 1.0 / r_ohm


class _LineFamily:
    """LDL^T factors of a family of parallel, independent lines (all rows or all columns).

    Line ``m`` has nodes ``k = 0 .. n_pos-1`` from its free end (``k = 0``) to its terminal
    end; neighbours are joined by ``g_w = 1/r_wire``, node ``k`` carries the cell conductance
    ``g[k, m]`` to the other family, and the last node the terminal conductance ``g_t``
    (``g_t = inf``: the last node is held, and the line has ``n_pos - 1`` unknowns). The
    matrix is ``M = g_w * Laplacian + diag(g) + g_t e_last e_last^T``.

    Eliminating from the free end, the pivots are ``dd_k = h_k + g_w`` (``+ g_t`` instead of
    ``+ g_w`` at the terminal node) with ``h_0 = g_0`` and
    ``h_k = g_k + g_w h_{k-1} / (g_w + h_{k-1})``: ``h_k`` is the conductance seen from node
    ``k`` towards the free end, a sum of positive terms. Then ``M x = b`` is

        y_0 = b_0,  y_k = b_k + (g_w / dd_{k-1}) y_{k-1}
        x_n = y_n / dd_n,  x_k = y_k / dd_k + (g_w / dd_k) x_{k+1}.
    """

    def __init__(self, g: np.ndarray, g_w: float, g_t: float):
        n_pos, n_lines = g.shape
        self.n = n_pos - 1 if math.isinf(g_t) else n_pos  # unknowns per line
        inv = np.empty((self.n, n_lines))
        h = np.zeros(n_lines)
        for k in range(self.n):
            h = g[k] + (g_w * h / (g_w + h) if k else 0.0)
            inv[k] = 1.0 / (h + (g_w if k < n_pos - 1 else g_t))
        self.inv = inv[:, :, None]  # 1/dd_k, broadcast over the batch axis
        self.mul = (g_w * inv)[:, :, None]  # g_w/dd_k

    def solve(self, y: np.ndarray, lines: slice = slice(None)) -> None:
        """Overwrite ``y`` (shape (n_pos, n_lines, B), a view is fine) with ``M^-1 y``, for
        the lines ``lines`` of the family (``y`` then holds only those); the held node, if
        any, is left alone."""
        n, inv, mul = self.n, self.inv[:, lines], self.mul[:, lines]
        if n == 0:
            return
        tmp = np.empty(y.shape[1:])
        for k in range(1, n):
            np.multiply(mul[k - 1], y[k - 1], out=tmp)
            np.add(y[k], tmp, out=y[k])
        np.multiply(y[n - 1], inv[n - 1], out=y[n - 1])
        for k in range(n - 2, -1, -1):
            np.multiply(mul[k], y[k + 1], out=tmp)
            np.multiply(y[k], inv[k], out=y[k])
            np.add(y[k], tmp, out=y[k])


class _Tile:
    """The factorised row and column lines of one tile (``r_wire_ohm > 0``).

    Arrays of node quantities have shape (R, C, B): ``x[i, j, b]``.
    """

    def __init__(self, g: np.ndarray, lines: LineResistance):
        self.g = g
        self.R, self.C = g.shape
        self.g_w = 1.0 / lines.r_wire_ohm
        self.g_rt = _terminal_conductance(lines.r_row_terminal_ohm)
        self.g_ct = _terminal_conductance(lines.r_col_terminal_ohm)
        # rows: position k = C-1-j (free end j = C-1, terminal j = 0)
        self.rows = _LineFamily(g.T[::-1], self.g_w, self.g_rt)
        # columns: position k = i (free end i = 0, terminal i = R-1)
        self.cols = _LineFamily(g, self.g_w, self.g_ct)
        self.g3 = g[:, :, None]

    def solve_rows(self, x: np.ndarray) -> None:
        """``x <- A^-1 x`` for every row line (shape (R, C, B)); a held first node is set
        to 0."""
        self.rows.solve(x.transpose(1, 0, 2)[::-1])
        if math.isinf(self.g_rt):
            x[:, 0] = 0.0

    def solve_cols(self, x: np.ndarray) -> None:
        """``x <- K^-1 x`` for every column line; a held bottom node is set to 0."""
        self.cols.solve(x)
        if math.isinf(self.g_ct):
            x[-1] = 0.0

    def currents(self, w: np.ndarray, u_bottom: np.ndarray) -> np.ndarray:
        """Terminal currents (C, B) of column voltages ``w`` and bottom-row voltages
        ``u_bottom`` (C, B): ``g_ct w_{R-1,j}``, or, with the bottom node held at 0 V, the
        wire and cell currents into it, ``g_w w_{R-2,j} + g_{R-1,j} u_{R-1,j}``."""
        if not math.isinf(self.g_ct):
            return self.g_ct * w[-1]
        current = self.g[-1][:, None] * u_bottom
        if self.R > 1:
            current = current + self.g_w * w[-2]
        return current


def _converged(residual_l1: np.ndarray, current: np.ndarray, tol: float) -> bool:
    return bool(np.all(residual_l1 <= tol * np.max(np.abs(current), axis=0)))


def _solve_alternating(tile: _Tile, v3: np.ndarray, tol: float, max_sweeps: int):
    """Line Gauss-Seidel: ``a = A^-1 g (v - w)``, then ``w = K^-1 g (v - a)``."""
    g3 = tile.g3
    w = np.zeros((tile.R, tile.C, v3.shape[2]))
    for sweep in range(1, max_sweeps + 1):
        a = g3 * (v3 - w)
        tile.solve_rows(a)
        w_new = g3 * (v3 - a)
        tile.solve_cols(w_new)
        # the state (a, w_new) violates KCL only at the row nodes, by g (w_new - w)
        residual = np.einsum("ijb->b", np.abs(g3 * (w_new - w)))
        w = w_new
        current = tile.currents(w, v3[-1] - a[-1])
        if _converged(residual, current, tol):
            return current, sweep, True
    return current, max_sweeps, False


def _solve_cg(tile: _Tile, v3: np.ndarray, tol: float, max_sweeps: int):
    """Conjugate gradients on ``S w = g o u0``, preconditioned by ``K^-1`` (see module)."""
    g3 = tile.g3
    a0 = g3 * v3
    tile.solve_rows(a0)  # row drops with the columns held at 0 V
    r = g3 * (v3 - a0)  # residual of w = 0: f = g o u0
    if math.isinf(tile.g_ct):
        r[-1] = 0.0
    z = r.copy()
    tile.solve_cols(z)
    p, kp = z, r.copy()  # search direction and K p
    rz = np.einsum("ijb,ijb->b", r, z)
    w = np.zeros_like(r)
    a_bottom = a0[-1].copy()  # bottom-row drops of the iterate: a = a0 - A^-1 (g o w)
    current = tile.currents(w, v3[-1] - a_bottom)
    if _converged(np.einsum("ijb->b", np.abs(r)), current, tol):
        return current, 1, True
    for sweep in range(2, max_sweeps + 1):
        t = g3 * p
        tile.solve_rows(t)
        a_dir = t[-1].copy()  # A^-1 (g o p), bottom row
        t *= g3
        q = np.subtract(kp, t, out=t)  # S p
        if math.isinf(tile.g_ct):
            q[-1] = 0.0
        pq = np.einsum("ijb,ijb->b", p, q)
        alpha = np.divide(rz, pq, out=np.zeros_like(rz), where=pq > 0)
        w += alpha * p
        r -= alpha * q
        a_bottom -= alpha * a_dir
        current = tile.currents(w, v3[-1] - a_bottom)
        if _converged(np.einsum("ijb->b", np.abs(r)), current, tol):
            return current, sweep, True
        z = r.copy()
        tile.solve_cols(z)
        rz_new = np.einsum("ijb,ijb->b", r, z)
        beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
        rz = rz_new
        p = z + beta * p
        kp = r + beta * kp
    return current, max_sweeps, False


def line_column_currents(
    G_S,
    v_V,
    lines: LineResistance,
    tol: float = 1e-10,
    max_sweeps: int = 1000,
    method: str = "cg",
) -> tuple[np.ndarray, int]:
    """Column currents by iterating on the line voltages (the fast solver).

    Every sweep solves all row lines exactly (tridiagonal, with the column voltages fixed)
    and all column lines exactly (with the row voltages fixed), vectorised over the lines
    and the batch. ``method="cg"`` (default) accelerates the sweeps with preconditioned
    conjugate gradients on the column voltages; ``method="alternating"`` is plain line
    Gauss-Seidel. The module docstring gives the equations and the convergence rates.

    Parameters
    ----------
    G_S : array_like, shape (R, C)
        Device conductances [S].
    v_V : array_like, shape (R,) or (B, R)
        Row drive voltages [V].
    lines : LineResistance
    tol : float
        Stop when the Kirchhoff residual (in amperes, 1-norm over the nodes) is at most
        ``tol * max_j |I_j|`` for every input vector; this bounds every column current's
        error by ``tol max_j |I_j|``.
    max_sweeps : int
        At most this many sweeps; a :class:`RuntimeWarning` says when ``tol`` was not met.
    method : {"cg", "alternating"}

    Returns
    -------
    currents : ndarray, shape (C,) or (B, C)
        Current into each column's virtual ground [A].
    sweeps : int
        Row-and-column line sweeps used: 0 when no iteration was needed (ideal lines,
        ``I = v @ g``; or ``r_wire_ohm = 0``, where every line is one node and the small
        ``R + C`` node system is solved directly by :func:`solve_nodal`).
    """
    G = _check_conductance(G_S)
    v, single = _check_voltages(v_V, G.shape[0])
    lines = _check_lines(lines)
    if method not in ("cg", "alternating"):
        raise ValueError(f"method must be 'cg' or 'alternating', got {method!r}")
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be > 0, got {tol}")
    if int(max_sweeps) != max_sweeps or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be an integer >= 1, got {max_sweeps}")

    if lines.r_wire_ohm == 0:
        if lines.r_row_terminal_ohm == 0 and lines.r_col_terminal_ohm == 0:
            current = v @ cell_conductance(G, lines.r_access_ohm)
        else:
            current = solve_nodal(G, v, lines).column_currents_A
        sweeps = 0
    else:
        tile = _Tile(cell_conductance(G, lines.r_access_ohm), lines)
        v3 = np.ascontiguousarray(v.T)[:, None, :]  # (R, 1, B)
        solver = _solve_cg if method == "cg" else _solve_alternating
        current_cb, sweeps, ok = solver(tile, v3, tol, int(max_sweeps))
        if not ok:
            warnings.warn(
                f"line_column_currents: tol={tol:g} not reached in {sweeps} sweeps",
                RuntimeWarning,
                stacklevel=2,
            )
        current = current_cb.T
    current = np.ascontiguousarray(current)
    return (current[0], sweeps) if single else (current, sweeps)


def _row_admittances(g: np.ndarray, g_w: float, g_rt: float, max_floats: int = 1 << 20):
    """Yield, for each row ``i``, ``Y_i = D_i - D_i A_i^-1 D_i`` (C x C) [S].

    ``D_i = diag(g_i)``, ``A_i`` the row line's matrix (module docstring): with the row's
    source at 0 V, ``Y_i`` maps the column-node voltages ``w_i`` to the currents that the
    row's cells draw out of those nodes. ``A_i^-1 D_i`` is computed by the tridiagonal solves
    of all rows of a chunk at once (the chunk holds at most ``max_floats`` numbers).
    """
    R, C = g.shape
    rows = _LineFamily(g.T[::-1], g_w, g_rt)
    diag = np.arange(C)
    chunk = max(1, max_floats // (C * C))
    for start in range(0, R, chunk):
        part = slice(start, min(R, start + chunk))
        gp = g[part]
        x = np.zeros((gp.shape[0], C, C))  # x[i, j, m]: row i, node j, right-hand side m
        x[:, diag, diag] = gp
        rows.solve(x.transpose(1, 0, 2)[::-1], part)
        if math.isinf(g_rt):
            x[:, 0, :] = 0.0  # the held node carries no drop
        x *= -gp[:, :, None]
        x[:, diag, diag] += gp
        yield from x


def _effective_conductance_direct(g: np.ndarray, g_w: float, g_rt: float, g_ct: float):
    """Exact ``G_eff`` (R x C) by block elimination of the rows, top to bottom (module
    docstring, "Effective conductance"); blocks of ``min(R, C)``."""
    R, C = g.shape
    if C > R:  # the mirrored tile: rows <-> columns, both reversed (reciprocity)
        return _effective_conductance_direct(g[::-1, ::-1].T, g_w, g_ct, g_rt)[::-1, ::-1].T
    eye = np.eye(C)
    J = np.zeros((C, R))  # J[:, k]: Norton currents into the current layer per volt on row k
    H = None  # conductance matrix of the layers so far, seen from the current layer
    for i, Y in enumerate(_row_admittances(g, g_w, g_rt)):
        if H is None:
            H = Y
        else:  # the layers above, seen through one wire segment of every column
            factor = cho_factor(H + g_w * eye, lower=True, check_finite=False)
            sol = cho_solve(factor, np.hstack([H, J[:, :i]]), check_finite=False)
            H = Y + g_w * sol[:, :C]
            H = 0.5 * (H + H.T)
            J[:, :i] = g_w * sol[:, C:]
        J[:, i] = Y.sum(axis=1)  # phi_i = Y_i 1
    if math.isinf(g_ct):
        return np.ascontiguousarray(J.T)
    factor = cho_factor(H + g_ct * eye, lower=True, check_finite=False)
    return np.ascontiguousarray((g_ct * cho_solve(factor, J, check_finite=False)).T)


def effective_conductance(
    G_S,
    lines: LineResistance,
    method: str = "direct",
    tol: float = 1e-10,
    max_sweeps: int = 1000,
    block: int = 128,
) -> np.ndarray:
    """The conductance matrix that the tile realises with its parasitic lines.

    The network is linear in the drive, so ``I = v @ G_eff`` exactly, where row ``k`` of
    ``G_eff`` [S] is the column currents for the unit input ``v = e_k`` (1 V on row ``k``,
    0 V on the others).

    Parameters
    ----------
    G_S : array_like, shape (R, C)
        Device conductances [S].
    lines : LineResistance
    method : {"direct", "cg", "alternating"}
        ``"direct"`` (default): exact block elimination of the lines, all unit inputs at
        once (module docstring, "Effective conductance"); cost ``~ 2.3 max(R, C) min(R, C)^3
        + R^2 C^2`` flops in LAPACK, ~0.05 s for 128 x 128 on one core. ``"cg"`` /
        ``"alternating"``: :func:`line_column_currents` on the identity batch, in blocks of
        ``block`` unit inputs (a cross-check; slower).
    tol, max_sweeps
        Passed to :func:`line_column_currents` (iterative methods only).
    block : int
        Unit inputs per iterative solve (memory: about ``10 R C block`` floats).

    Returns
    -------
    ndarray, shape (R, C)
        ``G_eff``; a copy of ``G_S`` for ideal lines.
    """
    G = _check_conductance(G_S)
    lines = _check_lines(lines)
    if method not in ("direct", "cg", "alternating"):
        raise ValueError(f"method must be 'direct', 'cg' or 'alternating', got {method!r}")
    if int(block) != block or block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block}")
    if lines.ideal:
        return G.copy()
    g = cell_conductance(G, lines.r_access_ohm)
    if lines.r_row_terminal_ohm == 0 and lines.r_col_terminal_ohm == 0 and lines.r_wire_ohm == 0:
        return g
    R = G.shape[0]
    if lines.r_wire_ohm == 0:  # every line is one node: the small R + C node system
        return solve_nodal(G, np.eye(R), lines).column_currents_A
    if method == "direct":
        g_rt = _terminal_conductance(lines.r_row_terminal_ohm)
        g_ct = _terminal_conductance(lines.r_col_terminal_ohm)
        return _effective_conductance_direct(g, 1.0 / lines.r_wire_ohm, g_rt, g_ct)
    out = np.empty_like(G)
    eye = np.eye(R)
    for start in range(0, R, int(block)):
        stop = min(R, start + int(block))
        out[start:stop], _ = line_column_currents(
            G, eye[start:stop], lines, tol=tol, max_sweeps=max_sweeps, method=method
        )
    return out


# ---------------------------------------------------------------- decoupled lines


def _ladder_pair(s: np.ndarray, r_w: float, y_end: float, u_end: float) -> np.ndarray:
    """The conductance that each node of independent ladders sees towards either end.

    ``s`` has shape (L, N): the shunt [S] at position ``k`` of ``N`` lines of ``L`` nodes,
    neighbours joined by ``r_w`` ohm. Returns ``Y`` of shape (2, L, N): ``Y[0, k]`` looks from
    node ``k`` towards position 0, where the line ends in ``y_end`` siemens to ground,
    ``Y[0, 0] = y_end``, ``Y[0, k+1] = 1 / (r_w + 1 / (Y[0, k] + s_k))``; ``Y[1, k]`` looks
    towards position ``L - 1``, ending in ``u_end``, likewise from the other side. Both
    recursions run in one loop (one set of array operations for the two). Needs
    ``errstate(divide="ignore")``: ``1/0 = inf`` for a line with nothing beyond it.
    """
    L, N = s.shape
    both = np.empty((2, L, N))
    ss = np.empty((L, 2, N))  # ss[k] = (s_k, s_{L-1-k})
    ss[:, 0] = s
    ss[:, 1] = s[::-1]
    y = np.empty((2, N))
    y[0], y[1] = y_end, u_end
    tmp = np.empty((2, N))
    for k in range(L):
        both[0, k] = y[0]
        both[1, L - 1 - k] = y[1]
        if k + 1 < L:
            np.add(y, ss[k], out=tmp)
            np.reciprocal(tmp, out=tmp)
            tmp += r_w
            np.reciprocal(tmp, out=y)
    return both


def _row_ladders(s: np.ndarray, r_w: float, g_rt: float) -> tuple[np.ndarray, np.ndarray]:
    """Thevenin equivalents ``(E, Yr)`` seen by the nodes of independent row ladders
    (module docstring, "Decoupled lines").

    ``s`` has shape (C, N): the shunt conductance [S] at position ``j`` (0 next to the
    driver) of ``N`` lines. Node ``j``, its own shunt removed, sees ``E[j]`` volts per volt of
    drive behind ``Yr[j]`` siemens: ``E'_{j+1} = E'_j YL_j / (YL_j + s_j)`` with
    ``E'_0 = 1``, ``E = E' YL / (YL + YR)``.
    """
    YL, YR = _ladder_pair(s, r_w, g_rt, 0.0)
    ratio = np.empty_like(s)  # YL_j / (YL_j + s_j), the voltage divider of node j
    np.divide(s, YL, out=ratio)
    ratio += 1.0
    np.reciprocal(ratio, out=ratio)  # 1 / (1 + s/YL): 1 at a held node (YL = inf)
    E = np.empty_like(s)
    E[0] = 1.0
    if len(s) > 1:
        np.cumprod(ratio[:-1], axis=0, out=E[1:])
    E /= 1.0 + YR / YL
    YL += YR
    return E, YL


def _column_ladders(q: np.ndarray, r_w: float, g_ct: float) -> tuple[np.ndarray, np.ndarray]:
    """Transfer fractions ``t`` and driving-point conductances ``Yc`` of independent column
    ladders (module docstring, "Decoupled lines").

    ``q`` has shape (R, N): the shunt [S] at position ``i`` (0 at the top, ``R - 1`` next to
    the virtual ground) of ``N`` lines. A current injected at node ``i`` (its own shunt
    removed) sees ``Yc[i] = U_i + D_i`` siemens and delivers the fraction
    ``t[i] = a_{i+1} D_i / (U_i + D_i)`` to the ground, ``a_i = a_{i+1} D_i / (q_i + D_i)``.
    """
    U, D = _ladder_pair(q, r_w, 0.0, g_ct)
    ratio = np.empty_like(q)  # D_i / (q_i + D_i): the share of a current from above
    np.divide(q, D, out=ratio)
    ratio += 1.0
    np.reciprocal(ratio, out=ratio)
    t = np.empty_like(q)
    t[-1] = 1.0
    if len(q) > 1:  # a_{i+1} = prod_{m > i} D_m / (q_m + D_m)
        np.cumprod(ratio[:0:-1], axis=0, out=t[-2::-1])
    t /= 1.0 + U / D
    U += D
    return t, U


def decoupled_conductance(G_S, lines: LineResistance, fast: bool = True) -> np.ndarray:
    """``G_dec``: the tile's effective conductance with every cell seeing only its own row and
    column line, the other cells acting as shunts (module docstring, "Decoupled lines").

        G_dec = g E t / (1 + g / Yr + g / Yc),   g = G / (1 + G r_access)           [S]

    Exact for a single row or a single column; in a tile, ``G_eff - G_dec`` is the current
    that a row sends into a column through the other cells. ``O(R C)`` work: three passes of
    line recursions, each vectorised over all the lines of all the tiles.

    Parameters
    ----------
    G_S : array_like, shape (..., R, C)
        Device conductances [S] of one tile or of a stack of equally shaped tiles (leading
        axes); finite and ``>= 0``. Rows of zeros above a tile's first row and columns of
        zeros right of its last column change nothing (dangling wire), so smaller tiles can
        be stacked with larger ones padded that way.
    lines : LineResistance
    fast : bool
        Run the line recursions as numba kernels (:mod:`analogebl.hardware.kernels`);
        ``False``: the NumPy reference recursions of this module (the same equations).

    Returns
    -------
    ndarray, the shape of ``G_S``
        ``G_dec`` [S]; a copy of ``G_S`` for ideal lines.
    """
    G = np.asarray(G_S, dtype=np.float64)
    if G.ndim < 2 or G.shape[-2] < 1 or G.shape[-1] < 1:
        raise ValueError(f"G_S must have shape (..., R, C) with R, C >= 1, got {G.shape}")
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ValueError("G_S must hold finite conductances >= 0 (siemens)")
    lines = _check_lines(lines)
    if lines.ideal:
        return G.copy()
    R, C = G.shape[-2:]
    g = G / (1.0 + G * lines.r_access_ohm) if lines.r_access_ohm else G
    g3 = g.reshape(-1, R, C)
    T = g3.shape[0]
    r_w = lines.r_wire_ohm
    g_rt = _terminal_conductance(lines.r_row_terminal_ohm)
    g_ct = _terminal_conductance(lines.r_col_terminal_ohm)

    def rows_of(x3):  # (T, R, C) -> (C, T R): one row line per column of the result
        return np.ascontiguousarray(x3.transpose(2, 0, 1)).reshape(C, T * R)

    def cols_of(x3):  # (T, R, C) -> (R, T C): one column line per column of the result
        return np.ascontiguousarray(x3.transpose(1, 0, 2)).reshape(R, T * C)

    def from_rows(x):
        return x.reshape(C, T, R).transpose(1, 2, 0)

    def from_cols(x):
        return x.reshape(R, T, C).transpose(1, 0, 2)

    pair, rows, cols = (
        (_kernels.ladder_pair, _kernels.row_ladders, _kernels.column_ladders)
        if fast
        else (_ladder_pair, _row_ladders, _column_ladders)
    )
    with np.errstate(divide="ignore"):
        gr, gc = rows_of(g3), cols_of(g3)
        YL, YR = pair(gr, r_w, g_rt, 0.0)  # the columns held at 0 V: only Yr
        Yr = cols_of(from_rows(YL + YR))
        t, Yc = cols(gc / (1.0 + gc / Yr), r_w, g_ct)
        Yc = rows_of(from_cols(Yc))
        E, Yr = rows(gr / (1.0 + gr / Yc), r_w, g_rt)
        out = gr * E / (1.0 + gr / Yr + gr / Yc)
        out = from_rows(out) * from_cols(t)
    return np.ascontiguousarray(out).reshape(G.shape)

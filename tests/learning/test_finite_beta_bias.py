"""Why negative nudges kill hidden units at finite beta: the diode clamp's kink.

For one example and a hidden unit pinned at the lower clamp in the free phase (field
``h < 0``), the nudged state can only leave the clamp upward, ``s(beta) - s(0) = s(beta) >= 0``
for either sign of ``beta``. Its bias estimate ``-(s(beta) - s(0)) / beta`` is therefore
``<= 0`` for P-EP (raise the bias: switch the unit on) and ``>= 0`` for N-EP (lower it: pin it
harder), while the true gradient of a strictly pinned unit is 0. At the upper clamp the signs
flip (N-EP pushes saturated units further up). The seven-rule cpu tables show the
consequence: N-EP / N-CpL end with 73-86 % of the top hidden layer pinned, P-EP / P-CpL with
17-22 % (docs/results).
"""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.learning.estimators import estimate
from analogebl.learning.rules import make_rule
from tests.conftest import backend_pair, random_batch


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finite_beta_pushes_pinned_units_apart_by_the_sign_of_beta(seed):
    b, _ = backend_pair("tiny_dense", "float64", seed=seed, fast="numba")
    x, y = random_batch(b.plan, 1, seed=seed)
    t = b.one_hot(y)
    free = b.relax(b.zero_state(x), 400)
    assert b.residual(free) < 1e-12
    imp, _ = b.implicit_gradient(free, t, 1e-12)
    tested = pushed = 0
    for k in range(1, b.plan.output):  # hidden layers
        h = b.to_numpy(b.field(free, k)).ravel()
        low, high = h < -1e-6, h > 1 + 1e-6  # strictly pinned at a clamp
        g_true = b.to_numpy(imp[f"b{k}"]).ravel()
        np.testing.assert_allclose(g_true[low | high], 0.0, atol=1e-12)
        for rule, sign in (("p_ep", -1.0), ("n_ep", +1.0)):
            g, _ = estimate(b, make_rule(rule, 0.5, 200), free, t)
            g = b.to_numpy(g[f"b{k}"]).ravel()
            assert np.all(sign * g[low] >= -1e-12), (rule, k)  # P-EP <= 0, N-EP >= 0
            assert np.all(sign * g[high] <= 1e-12), (rule, k)  # flipped at the upper clamp
            pushed += int(np.sum(np.abs(g[low | high]) > 1e-6))  # the nudge moved them
        tested += int(low.sum() + high.sum())
    assert tested > 0 and pushed > 0  # the kink was crossed: the signs were tested

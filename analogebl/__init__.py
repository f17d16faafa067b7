"""analogebl: a simulator of analog energy-based circuits and their learning rules.

Public API::

    import analogebl as ae
    net = ae.Network.from_catalog("dchn32", in_channels=3, num_classes=10, width=0.25,
                                  backend="reference", dtype="float64", seed=0)
    states = net.relax(x, iterations=60, schedule="async")
    grads = net.estimate_gradient(x, y, rule="c_ep", beta=0.25)
"""

from analogebl.threads import quiet_spinning_defaults

quiet_spinning_defaults()  # before NumPy's BLAS and torch's OpenMP load (see threads.py)

from analogebl.circuit import Circuit, load_circuit  # noqa: E402
from analogebl.errors import AnalogeblError, ConfigError, DataError, DivergenceError  # noqa: E402
from analogebl.learning import RULES, make_rule  # noqa: E402
from analogebl.network import Network  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "RULES",
    "AnalogeblError",
    "Circuit",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "Network",
    "__version__",
    "load_circuit",
    "make_rule",
]

"""fnrl: a functional, pure-JAX toolkit for deep reinforcement learning.

The flat public API: every building block is re-exported here (`fnrl.gae`, `fnrl.q_learning`, ...);
the modules (`fnrl.returns`, `fnrl.value_learning`, ...) stay importable for namespaced use.
"""

from fnrl.returns import (
    agentnet_end_indicator,
    agentnet_n_step_reference,
    discounted_cumulative_reward,
    discounted_returns,
    gae,
    lambda_returns,
    n_step_returns,
    q_lambda,
    retrace,
    vtrace,
    vtrace_pg_advantages,
)

__version__ = "0.1.0"

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
from fnrl.policy_gradients import (
    A2CLossParts,
    PPOClipInfo,
    a2c_loss,
    average_action_components,
    clipped_value_loss,
    dpg_loss,
    entropy_loss,
    mean_kl,
    normalize_advantages,
    policy_gradient_loss,
    ppo_clip_loss,
    reinforce_loss,
    trpo_surrogate,
    value_loss,
)
from fnrl.value_learning import (
    absolute_loss,
    agentnet_a2c_objective,
    agentnet_dpg_critic_objective,
    agentnet_qlearning_objective,
    agentnet_sarsa_objective,
    agentnet_squared_error,
    boltzmann_state_value,
    categorical_double_q_learning,
    categorical_l2_project,
    categorical_q_learning,
    double_q_learning,
    double_q_state_value,
    expected_sarsa,
    expected_state_value,
    huber_loss,
    l2_loss,
    large_margin_loss,
    lower_triangular,
    max_state_value,
    mellowmax_state_value,
    n_step_q_learning,
    naf_advantage,
    naf_q_value,
    q_learning,
    quantile_q_learning,
    quantile_regression_loss,
    sarsa,
    select_action_values,
    td_error,
)

__version__ = "0.1.0"

"""fnrl: a functional, pure-JAX toolkit for deep reinforcement learning.

The flat public API: the building blocks are re-exported here (`fnrl.gae`, `fnrl.q_learning`, ...);
the modules (`fnrl.returns`, `fnrl.value_learning`, ...) stay importable for namespaced use, and a few
generic names live only there (`fnrl.checkpoint.save`/`restore`/`latest`, `fnrl.preprocessing.clip`/
`stack`/`from_spec`, `fnrl.networks.counter`/`switch`); environments are `fnrl.envs`.
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
from fnrl.checkpoint import CheckpointError
from fnrl.networks import (
    MLP,
    AttentionOutput,
    Augmentation,
    BahdanauAttention,
    BernoulliPolicyHead,
    BetaPolicyHead,
    CategoricalPolicyHead,
    DistributionalQHead,
    DuelingQHead,
    Embedding,
    Gate,
    GaussianPolicyHead,
    GRUCell,
    ImpalaCNN,
    LayeredNetwork,
    LSTMCell,
    LSTMCellState,
    NAFHead,
    NAFOutput,
    NatureCNN,
    QHead,
    RNNCell,
    ValueHead,
    clip_gradient,
    dueling_combine,
    network_from_spec,
    stack_augmentation,
    window_augmentation,
)
from fnrl.optimizers import (
    ConjugateGradientInfo,
    ESInfo,
    LineSearchInfo,
    NaturalGradientInfo,
    NaturalGradientStepInfo,
    centered_ranks,
    clipped_step,
    conjugate_gradient,
    es_gradient,
    es_step,
    fisher_vector_product,
    line_search,
    multi_step,
    natural_gradient,
    natural_gradient_direction,
    natural_gradient_step,
    optimized_step,
    partial_target_update,
    periodic_target_update,
    polyak_target_update,
)
from fnrl.preprocessing import (
    Preprocessor,
    RunningStats,
    frame_stack,
    grayscale,
    image_resize,
    reward_normalize,
    running_standardize,
    running_stats_all_reduce,
    running_stats_init,
    running_stats_merge,
    running_stats_update,
    standardize,
)
from fnrl.distributions import (
    TENSORFORCE_MAX_LOG_STD,
    TENSORFORCE_MIN_LOG_STD,
    BetaParams,
    Distribution,
    GaussianParams,
    bernoulli,
    beta_distribution,
    beta_mean,
    beta_params_from_outputs,
    categorical,
    categorical_log_probs,
    categorical_logits_from_probs,
    categorical_probs,
    default_distribution,
    diag_gaussian,
    gaussian_params_from_outputs,
    squashed_gaussian,
)
from fnrl.exploration import (
    OUNoise,
    OUState,
    boltzmann,
    constant_schedule,
    episode_decay_noise,
    epsilon_greedy,
    epsilon_greedy_probs,
    explore_continuous,
    explore_discrete,
    gaussian_noise,
    greedy,
    half_life_decay,
    linear_anneal,
    ornstein_uhlenbeck,
    probabilistic,
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
from fnrl.rollout import (
    PolicyOutput,
    RolloutCarry,
    Trajectory,
    collect,
    make_act,
    replay,
    rollout_init,
    unroll,
)
from fnrl.types import Env, EnvSpec, Spec, TimeStep
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


def __getattr__(name: str):
    # `fnrl.envs` imports envpool, which is slow to load: only on first use.
    if name == "envs":
        import importlib

        return importlib.import_module(f"fnrl.{name}")
    raise AttributeError(f"module 'fnrl' has no attribute {name!r}")

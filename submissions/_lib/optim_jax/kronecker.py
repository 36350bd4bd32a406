"""The part Shampoo and Sketchy share: blocks, grafting, start step, momentum (JAX).

A Kronecker-factored method keeps, per parameter block and per axis, a factor
that summarizes the gradient's second moment along that axis; it differs only
in how a factor is stored, fed and applied (``FactorOps``). Everything else is
here, written once:

1. graft: a first-order direction (see ``graft_direction``) and its state;
2. factors: fed with every step's gradient, also before the start step, so
   that the first preconditioner already has history;
3. refresh (Shampoo): inverse roots recomputed at ``start_preconditioning_step``
   and every ``precondition_every`` steps after it, under ``lax.cond`` so the
   step compiles once;
4. direction: from the start step on, each block's preconditioned gradient
   rescaled to the norm of the same block of the graft direction; before it,
   and for parameters without a layout (vectors, embedding tables), the graft
   direction itself;
5. momentum: an exponential moving average of the direction with bias
   correction, heavy-ball or Nesterov (NAdam's form), so that the step size
   means what it means for Adam.

Steps are counted from 1. ``start_preconditioning_step`` 0 or 1 both mean
"from the first step". Statistics and updates are computed in float32 and the
update is cast back to the parameter's dtype.

Mirrors ``optim_torch/kronecker.py``.
"""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from submissions._lib.optim_blocks import block_layout
from submissions._lib.optim_jax._blocks import (
    apply_along,
    block_norms,
    from_blocks,
    safe_ratio,
    to_blocks,
    unfold,
)


class FactorOps(NamedTuple):
    """How one kind of Kronecker factor is stored, fed and applied."""

    #: (num_blocks, dim) -> the state of one axis's factors, batched over blocks.
    init: Callable[[int, int], Any]
    #: (state, unfolded gradient (N, dim, cols) float32) -> state; runs every step.
    update: Callable[[Any, jnp.ndarray], Any]
    #: (state, exponent p) -> state; runs on refresh steps. None: nothing to refresh.
    refresh: Optional[Callable[[Any, int], Any]]
    #: (state, x (N, R, dim), exponent p) -> x times the factor's -1/p power along dim.
    apply: Callable[[Any, jnp.ndarray, int], jnp.ndarray]


class KroneckerState(NamedTuple):
    count: jnp.ndarray  # int32 (), steps taken
    mu: optax.Params  # momentum of the direction, float32, like the params
    graft_nu: optax.Params  # second moment of the graft direction, float32
    # One entry per leaf (jax.tree.leaves order): a tuple of per-axis factor
    # states, or () for a leaf without a preconditioner.
    factors: List[Tuple[Any, ...]]


def graft_direction(
    grad: jnp.ndarray,
    nu: jnp.ndarray,
    count: jnp.ndarray,
    graft_type: str,
    beta2: float,
    graft_eps: float,
) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """The first-order direction whose per-block norm the preconditioned one takes.

    'rmsprop_normalized' (default; AlgoPerf's Shampoo baseline): RMSProp on the
    gradient divided by its norm, so a sudden change of gradient scale does not
    shrink later steps. 'adam': RMSProp on the raw gradient; with the shared
    momentum below, the grafted step is Adam's. Both are bias-corrected (our
    choice): without it the first steps are 1/sqrt(1 - beta2) times larger.
    """
    if graft_type == 'rmsprop_normalized':
        grad = grad * safe_ratio(1.0, jnp.linalg.norm(grad))
    nu = beta2 * nu + (1.0 - beta2) * jnp.square(grad)
    nu_hat = nu / (1.0 - jnp.power(beta2, count.astype(jnp.float32)))
    return grad / (jnp.sqrt(nu_hat) + graft_eps), nu


def momentum_update(
    mu: jnp.ndarray, direction: jnp.ndarray, count: jnp.ndarray, beta1: float, nesterov: bool
) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """(update, new momentum): bias-corrected EMA, Nesterov in NAdam's form."""
    t = count.astype(jnp.float32)
    mu = beta1 * mu + (1.0 - beta1) * direction
    if nesterov:
        update = beta1 * mu / (1.0 - jnp.power(beta1, t + 1.0)) + (1.0 - beta1) * direction / (
            1.0 - jnp.power(beta1, t)
        )
    else:
        update = mu / (1.0 - jnp.power(beta1, t))
    return update, mu


def token_of(factor: Any) -> jnp.ndarray:
    """A scalar computed from every array of ``factor`` (its first entries, summed)."""
    return sum(leaf.reshape(-1)[0] for leaf in jax.tree.leaves(factor))


def after(factor: Any, token: Optional[jnp.ndarray]) -> Any:
    """``factor`` with a data dependency on ``token``, so it is ready only after it.

    Why: jaxlib 0.10's CPU LAPACK kernels (eigh, svd) split a batch over XLA's
    intra-op thread pool and block a pool thread until the pieces finish; when
    XLA runs as many such calls at once as the pool has threads, every thread
    waits and the step deadlocks (seen here on 2 cores with Shampoo on the lm
    workload; jaxlib 0.11 drops that parallel path). Passing a token from each
    LAPACK result into the next call's input keeps one call in flight at a
    time. XLA drops ``optimization_barrier`` on CPU, so the dependency is
    data: ``+ 0 * token`` (NaN only if the previous factor is already NaN).
    On GPU the calls run one after another anyway.
    """
    if token is None:
        return factor
    zero = 0.0 * token
    return jax.tree.map(lambda a: a + zero.astype(a.dtype), factor)


def scale_by_kronecker(
    ops: FactorOps,
    *,
    beta1: float,
    beta2: float,
    block_size: int,
    precondition_every: int,
    start_preconditioning_step: int,
    max_preconditioner_dim: int,
    nesterov: bool,
    graft_type: str,
    graft_eps: float,
) -> optax.GradientTransformation:
    """The preconditioned, grafted, momentum direction (no learning rate, no decay)."""
    start = max(int(start_preconditioning_step), 1)

    def layout_of(shape):
        return block_layout(shape, block_size, max_preconditioner_dim)

    def init_fn(params):
        leaves = jax.tree.leaves(params)
        factors = []
        for leaf in leaves:
            layout = layout_of(leaf.shape)
            factors.append(
                ()
                if layout is None
                else tuple(ops.init(layout.num_blocks, b) for b in layout.sizes)
            )
        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        return KroneckerState(
            count=jnp.zeros([], jnp.int32), mu=zeros, graft_nu=zeros, factors=factors
        )

    def leaf_direction(grad, nu, factors, count, is_refresh, is_active, chain):
        graft, nu = graft_direction(grad, nu, count, graft_type, beta2, graft_eps)
        layout = layout_of(grad.shape)
        if layout is None:
            return graft, nu, factors, chain
        p = layout.exponent
        blocks = to_blocks(grad, layout)  # (N, b1, ..., bk)
        if ops.refresh is None:  # the LAPACK call is in the update (Sketchy's eigh)
            updated = []
            for axis, factor in enumerate(factors):
                factor = ops.update(after(factor, chain), unfold(blocks, axis))
                chain = token_of(factor)
                updated.append(factor)
            factors = tuple(updated)
        else:  # it is in the refresh (Shampoo's eigh)
            factors = tuple(ops.update(f, unfold(blocks, a)) for a, f in enumerate(factors))

            def refresh_all(operands):
                fs, link = operands
                out = []
                for f in fs:
                    f = ops.refresh(after(f, link), p)
                    link = token_of(f)
                    out.append(f)
                return tuple(out)

            # The token is used inside the refresh branch only, so the check costs nothing
            # on other steps and XLA cannot prune it from the conditional's operands.
            start_token = jnp.zeros([], jnp.float32) if chain is None else chain
            factors = jax.lax.cond(
                is_refresh, refresh_all, lambda operands: operands[0], (factors, start_token)
            )
            chain = token_of(factors)

        def preconditioned(_):
            pre = blocks
            for axis, factor in enumerate(factors):
                pre = apply_along(pre, axis, lambda x, factor=factor: ops.apply(factor, x, p))
            scale = safe_ratio(block_norms(to_blocks(graft, layout)), block_norms(pre))
            return from_blocks(pre * scale.reshape((-1,) + (1,) * layout.rank), layout)

        direction = jax.lax.cond(is_active, preconditioned, lambda _: graft, None)
        return direction, nu, factors, chain

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        is_active = count >= start
        is_refresh = is_active & ((count - start) % precondition_every == 0)
        grads, treedef = jax.tree.flatten(updates)
        mus, nus = jax.tree.leaves(state.mu), jax.tree.leaves(state.graft_nu)
        new_updates, new_mus, new_nus, new_factors = [], [], [], []
        chain = None  # a scalar from the last LAPACK result: see ``after``
        for grad, mu, nu, factors in zip(grads, mus, nus, state.factors):
            direction, nu, factors, chain = leaf_direction(
                grad.astype(jnp.float32), nu, factors, count, is_refresh, is_active, chain
            )
            update, mu = momentum_update(mu, direction, count, beta1, nesterov)
            new_updates.append(update.astype(grad.dtype))
            new_mus.append(mu)
            new_nus.append(nu)
            new_factors.append(factors)
        unflatten = treedef.unflatten
        return unflatten(new_updates), KroneckerState(
            count=count, mu=unflatten(new_mus), graft_nu=unflatten(new_nus), factors=new_factors
        )

    return optax.GradientTransformation(init_fn, update_fn)

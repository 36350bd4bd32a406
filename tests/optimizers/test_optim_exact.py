"""Our optimizers against references written from the equations in numpy (float64).

- Shampoo with full-rank factors is L^(-1/4) G R^(-1/4) per block (L_a^(-1/6)
  per axis for a 3-tensor), rescaled to the graft's block norm.
- Sketchy keeps exactly what a plain Frequent Directions sketch keeps, and with
  rank = dimension it is Shampoo.
- SONew's X is the tridiagonal matrix whose inverse agrees with the statistics
  on the tridiagonal band (its closed form, checked by building X densely).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import torch

from submissions._lib import optim_jax, optim_torch
from submissions._lib.optim_jax.sonew import tridiagonal_factors

BETA2 = 0.9
GRAFT_EPS = 1e-8


def _grads(shape, num_steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(num_steps)]


def _jax_directions(transform, grads):
    """The transformation's output per step (the direction, before lr)."""
    params = jnp.zeros(grads[0].shape, jnp.float32)
    state = transform.init(params)
    update = jax.jit(transform.update)
    out = []
    for grad in grads:
        direction, state = update(jnp.asarray(grad, jnp.float32), state, params)
        out.append(np.asarray(direction, np.float64))
    return out


def _torch_directions(optimizer_cls, grads, **hparams):
    """-(parameter change) per step with lr = 1 and no weight decay: the direction."""
    param = torch.nn.Parameter(torch.zeros(grads[0].shape))
    opt = optimizer_cls([param], lr=1.0, **hparams)
    out = []
    for grad in grads:
        before = param.detach().clone()
        param.grad = torch.tensor(grad, dtype=torch.float32)
        opt.step()
        out.append((before - param.detach()).double().numpy())
    return out


# --- numpy references ---------------------------------------------------------------------


def _inverse_root(mat, p, eps):
    eigvals, eigvecs = np.linalg.eigh(mat)
    eigvals = np.maximum(eigvals, 0.0)
    return (eigvecs * (eigvals + eps * eigvals.max()) ** (-1.0 / p)) @ eigvecs.T


def _mode_product(x, mat, axis):
    return np.moveaxis(np.tensordot(x, mat, axes=([axis], [0])), -1, axis)


def _graft_reference(grads):
    """RMSProp-normalized, bias-corrected graft direction per step."""
    nu, out = 0.0, []
    for t, g in enumerate(grads, start=1):
        g_hat = g / np.linalg.norm(g)
        nu = BETA2 * nu + (1 - BETA2) * g_hat**2
        out.append(g_hat / (np.sqrt(nu / (1 - BETA2**t)) + GRAFT_EPS))
    return out


def _shampoo_reference(grads, block_slices, eps):
    """Per-block Shampoo with a refresh every step, grafted per block; beta1 = 0."""
    grafts = _graft_reference(grads)
    ndim = grads[0].ndim
    stats = {}
    out = []
    for g, graft in zip(grads, grafts):
        direction = np.zeros_like(g)
        for block_id, index in enumerate(block_slices):
            block = g[index]
            pre = block
            for axis in range(ndim):
                unfolded = np.moveaxis(block, axis, 0).reshape(block.shape[axis], -1)
                key = (block_id, axis)
                stats[key] = BETA2 * stats.get(key, 0.0) + (1 - BETA2) * unfolded @ unfolded.T
                pre = _mode_product(pre, _inverse_root(stats[key], 2 * ndim, eps), axis)
            direction[index] = pre * np.linalg.norm(graft[index]) / np.linalg.norm(pre)
        out.append(direction)
    return out


def _all(shape):
    return [tuple(slice(0, d) for d in shape)]


SHAMPOO_CASES = {
    # shape, block_size, the blocks that size gives (see optim_blocks)
    'matrix': ((5, 3), 8, _all((5, 3))),
    'tensor3': ((3, 4, 2), 8, _all((3, 4, 2))),
    # (6, 5) in blocks of at most 3: rows 0:3, 3:6; columns 0:3, 3:5 (padded to 3)
    'blocked': (
        (6, 5),
        3,
        [(slice(r, r + 3), slice(c, min(c + 3, 5))) for r in (0, 3) for c in (0, 3)],
    ),
}
SHAMPOO_HPARAMS = dict(
    beta1=0.0,
    beta2=BETA2,
    eps=1e-6,
    precondition_every=1,
    start_preconditioning_step=1,
    graft_eps=GRAFT_EPS,
)


def test_matrix_inverse_root_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 6, 4))
    stats = a @ np.swapaxes(a, -1, -2)  # rank 4 of 6: the ridge matters
    for p in (4, 6):
        expected = []
        for mat in stats:
            ridge = 1e-3 * np.linalg.eigvalsh(mat).max()
            expected.append(
                np.real(scipy.linalg.fractional_matrix_power(mat + ridge * np.eye(6), -1.0 / p))
            )
        ours_jax = optim_jax.matrix_inverse_root(jnp.asarray(stats, jnp.float32), p, 1e-3)
        ours_torch = optim_torch.matrix_inverse_root(
            torch.tensor(stats, dtype=torch.float32), p, 1e-3
        )
        np.testing.assert_allclose(np.asarray(ours_jax), expected, rtol=2e-3, atol=2e-4)
        np.testing.assert_allclose(ours_torch.numpy(), expected, rtol=2e-3, atol=2e-4)


def test_zero_statistics_give_identity():
    zero = np.zeros((1, 3, 3), np.float32)
    np.testing.assert_array_equal(
        np.asarray(optim_jax.matrix_inverse_root(zero, 4, 1e-6))[0], np.eye(3)
    )
    np.testing.assert_array_equal(
        optim_torch.matrix_inverse_root(torch.tensor(zero), 4, 1e-6)[0].numpy(), np.eye(3)
    )


@pytest.mark.parametrize('case', sorted(SHAMPOO_CASES))
def test_shampoo_equals_exact_inverse_roots(case):
    shape, block_size, blocks = SHAMPOO_CASES[case]
    grads = _grads(shape, 4)
    expected = _shampoo_reference(grads, blocks, eps=1e-6)
    ours_jax = _jax_directions(
        optim_jax.scale_by_shampoo(block_size=block_size, **SHAMPOO_HPARAMS), grads
    )
    ours_torch = _torch_directions(
        optim_torch.Shampoo, grads, block_size=block_size, **SHAMPOO_HPARAMS
    )
    for step in range(len(grads)):
        np.testing.assert_allclose(
            ours_jax[step], expected[step], rtol=2e-3, atol=1e-4, err_msg=f'jax, step {step + 1}'
        )
        np.testing.assert_allclose(
            ours_torch[step],
            expected[step],
            rtol=2e-3,
            atol=1e-4,
            err_msg=f'torch, step {step + 1}',
        )


def test_shampoo_refreshes_only_on_schedule():
    """Between refreshes the roots stay those of the last refresh step (start 2, every 3)."""
    shape = (5, 3)
    grads = _grads(shape, 6)
    hparams = dict(SHAMPOO_HPARAMS, start_preconditioning_step=2, precondition_every=3)
    transform = optim_jax.scale_by_shampoo(block_size=8, **hparams)
    params = jnp.zeros(shape)
    state = transform.init(params)
    update = jax.jit(transform.update)
    roots = []
    for grad in grads:
        _, state = update(jnp.asarray(grad, jnp.float32), state, params)
        roots.append(np.asarray(state.factors[0][0].root))
    changed = [not np.allclose(roots[i], roots[i - 1]) for i in range(1, len(roots))]
    assert changed == [True, False, False, True, False]  # steps 2..6: refresh at 2 and 5
    np.testing.assert_array_equal(roots[0], np.eye(5)[None])  # step 1: before the start


def test_sketchy_with_full_rank_equals_shampoo():
    for shape in ((5, 3), (3, 4, 2)):
        grads = _grads(shape, 5, seed=2)
        common = dict(
            beta1=0.0,
            beta2=BETA2,
            block_size=8,
            start_preconditioning_step=1,
            graft_eps=GRAFT_EPS,
            eps=1e-6,
        )
        shampoo = _jax_directions(optim_jax.scale_by_shampoo(precondition_every=1, **common), grads)
        sketchy = _jax_directions(optim_jax.scale_by_sketchy(rank=8, **common), grads)
        shampoo_torch = _torch_directions(
            optim_torch.Shampoo, grads, precondition_every=1, **common
        )
        sketchy_torch = _torch_directions(optim_torch.Sketchy, grads, rank=8, **common)
        for step in range(len(grads)):
            np.testing.assert_allclose(sketchy[step], shampoo[step], rtol=2e-3, atol=1e-4)
            np.testing.assert_allclose(
                sketchy_torch[step], shampoo_torch[step], rtol=2e-3, atol=1e-4
            )


def _sketchy_reference(grads, rank, eps):
    """Frequent Directions (docs/methods.md, section Sketchy), one block, matrix gradients;
    beta1 = 0."""
    d = grads[0].shape
    sketches = [(np.zeros((n, rank)), np.zeros(rank), 0.0) for n in d]
    out = []
    for g, graft in zip(grads, _graft_reference(grads)):
        pre = g
        for axis in range(2):
            basis, sigma, tail = sketches[axis]
            unfolded = np.moveaxis(g, axis, 0).reshape(d[axis], -1)
            z = np.concatenate(
                [np.sqrt(BETA2) * basis * sigma, np.sqrt(1 - BETA2) * unfolded], axis=1
            )
            u, s, _ = np.linalg.svd(z, full_matrices=False)
            cut = s[rank] if len(s) > rank else 0.0
            basis, sigma = u[:, :rank], np.sqrt(np.maximum(s[:rank] ** 2 - cut**2, 0))
            tail = BETA2 * tail + cut**2
            sketches[axis] = (basis, sigma, tail)
            lam = sigma**2 + tail
            ridge = eps * lam.max()
            op = (basis * (lam + ridge) ** -0.25) @ basis.T + (tail + ridge) ** -0.25 * (
                np.eye(d[axis]) - basis @ basis.T
            )
            pre = _mode_product(pre, op, axis)
        out.append(pre * np.linalg.norm(graft) / np.linalg.norm(pre))
    return out


# (7, 6): both sketches are wide (d <= rank + cols); (12, 3): the 12-row one is
# tall (12 > 2 + 3), which takes the other Gram matrix.
@pytest.mark.parametrize('shape', [(7, 6), (12, 3)])
def test_sketchy_matches_frequent_directions_reference(shape):
    grads = _grads(shape, 5, seed=3)
    hparams = dict(
        beta1=0.0,
        beta2=BETA2,
        eps=1e-6,
        block_size=16,
        start_preconditioning_step=1,
        graft_eps=GRAFT_EPS,
    )
    expected = _sketchy_reference(grads, rank=2, eps=1e-6)
    ours_jax = _jax_directions(optim_jax.scale_by_sketchy(rank=2, **hparams), grads)
    ours_torch = _torch_directions(optim_torch.Sketchy, grads, rank=2, **hparams)
    for step in range(len(grads)):
        np.testing.assert_allclose(ours_jax[step], expected[step], rtol=2e-3, atol=1e-4)
        np.testing.assert_allclose(ours_torch[step], expected[step], rtol=2e-3, atol=1e-4)


def _tridiagonal(diag, off):
    return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


def test_sonew_tridiagonal_closed_form():
    """X = L diag(1/c) L^T is tridiagonal and its inverse equals the statistics on the band."""
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(6, 8))  # 6 steps of an 8-vector: statistics of full rank
    diag = np.mean(grads**2, axis=0)
    off = np.mean(grads[:, :-1] * grads[:, 1:], axis=0)
    eps = 1e-3
    psi, c = (
        np.asarray(x, np.float64)
        for x in tridiagonal_factors(
            jnp.asarray(diag, jnp.float32), jnp.asarray(off, jnp.float32), eps
        )
    )
    lower = np.eye(8) - np.diag(psi, -1)
    x = lower @ np.diag(1 / c) @ lower.T
    assert np.allclose(np.triu(x, 2), 0) and np.allclose(np.tril(x, -2), 0)
    inverse = np.linalg.inv(x)
    band = np.abs(np.subtract.outer(np.arange(8), np.arange(8))) <= 1
    target = _tridiagonal(diag + eps, off)
    np.testing.assert_allclose(inverse[band], target[band], rtol=1e-4, atol=1e-6)


def _sonew_reference(grads, beta1, beta2, eps):
    m = hd = he = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        hd = beta2 * hd + (1 - beta2) * g**2
        he = beta2 * he + (1 - beta2) * g[:-1] * g[1:]
        m_hat, d, e = m / (1 - beta1**t), hd / (1 - beta2**t), he / (1 - beta2**t)
        # X written out densely from the recursion (docs/methods.md, section SONew; no c_i <= 0
        # here); that this X is the closed form is checked by test_sonew_tridiagonal_closed_form.
        dd = d + eps
        psi = e / dd[1:]
        cc = dd.copy()
        cc[:-1] = dd[:-1] - psi * e
        lower = np.eye(len(g)) - np.diag(psi, -1)
        x = lower @ np.diag(1 / cc) @ lower.T
        u = x @ m_hat
        adam = m_hat / (np.sqrt(d) + GRAFT_EPS)
        out.append(u * np.linalg.norm(adam) / np.linalg.norm(u))
    return out


def test_sonew_update_matches_dense_reference():
    grads = _grads((9,), 6, seed=5)
    hparams = dict(beta1=0.9, beta2=BETA2, eps=1e-2, graft_eps=GRAFT_EPS)
    expected = _sonew_reference(grads, 0.9, BETA2, 1e-2)
    ours_jax = _jax_directions(optim_jax.scale_by_sonew(**hparams), grads)
    ours_torch = _torch_directions(optim_torch.SONew, grads, **hparams)
    for step in range(len(grads)):
        np.testing.assert_allclose(ours_jax[step], expected[step], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(ours_torch[step], expected[step], rtol=1e-3, atol=1e-5)

"""The work-dependent clock: a client's simulated time is what it is asked to do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness import spec_federated
from harness.errors import SubmissionError, UserInputError
from harness.trial.federated import latency
from harness.trial.federated.work import (
    NO_WORK,
    ClientWork,
    check_upload,
    dispatch_work,
    tree_nbytes,
)
from workloads.federated_shakespeare.workload import LATENCY_CONFIGS

NUM_CLIENTS = 60
FLOPS_PER_EXAMPLE = 6.0e7  # about the tiny model's
# A model of 30,000 float32 parameters in two leaves (120,000 bytes).
PARAMS = {
    'dense': {'kernel': np.zeros((100, 200), np.float32)},
    'head': np.zeros(10000, np.float32),
}
TEACHER = {'teacher_delta': PARAMS, 'teacher_age': 3}


def shipped(variant=None):
    return latency.from_config(LATENCY_CONFIGS[variant], NUM_CLIENTS, seed=5)


def work(local_steps=16, batch=2, extras=None):
    return dispatch_work(local_steps, batch, FLOPS_PER_EXAMPLE, PARAMS, extras)


def every_report(lat):
    return [(c, d) for c in range(NUM_CLIENTS) for d in range(3)]


@pytest.mark.parametrize('variant', [None, 'no_stragglers', 'heavy_stragglers'])
def test_doubling_local_steps_doubles_compute_time_and_nothing_else(variant):
    lat = shipped(variant)
    for client, dispatch in every_report(lat):
        one = lat.parts(client, dispatch, work(local_steps=16))
        two = lat.parts(client, dispatch, work(local_steps=32))
        assert two['compute_s'] == pytest.approx(2 * one['compute_s'], rel=1e-12)
        assert one['compute_s'] > 0
        for part in ('wait_s', 'download_s', 'upload_s'):
            assert two[part] == one[part]
        assert lat.latency_s(client, dispatch, work(local_steps=32)) > lat.latency_s(
            client, dispatch, work(local_steps=16)
        )


def test_an_extra_model_in_the_download_adds_its_bytes_time():
    lat = shipped()
    plain, taught = work(), work(extras=TEACHER)
    model_bytes = tree_nbytes(PARAMS)
    assert model_bytes == 120_000
    assert taught.download_bytes == 2 * model_bytes + 8  # the teacher and its age
    assert taught.upload_bytes == plain.upload_bytes == model_bytes
    for client, dispatch in every_report(lat):
        a, b = lat.parts(client, dispatch, plain), lat.parts(client, dispatch, taught)
        # The download time is linear in the bytes: the teacher adds exactly its share.
        extra_s = a['download_s'] * (taught.download_bytes - plain.download_bytes) / model_bytes
        assert b['download_s'] - a['download_s'] == pytest.approx(extra_s, rel=1e-9)
        assert (b['wait_s'], b['compute_s'], b['upload_s']) == (
            a['wait_s'],
            a['compute_s'],
            a['upload_s'],
        )


def random_round_config(rng):
    """Any valid round configuration: every choice a submission can make."""
    if rng.random() < 0.5:
        return spec_federated.RoundConfig(
            mode='sync',
            local_steps=int(rng.integers(1, 1000)),
            client_batch_size=int(rng.integers(1, 64)),
            clients_per_round=int(rng.integers(1, 30)),
            over_selection=float(rng.uniform(0, 2)),
            round_deadline_s=None if rng.random() < 0.3 else float(rng.uniform(1, 1e5)),
            late_updates=str(rng.choice(spec_federated.LATE_UPDATE_POLICIES)),
        )
    return spec_federated.RoundConfig(
        mode='async',
        local_steps=int(rng.integers(1, 1000)),
        client_batch_size=int(rng.integers(1, 64)),
        concurrency=int(rng.integers(1, 30)),
        buffer_size=int(rng.integers(1, 30)),
        async_slot_timeout_s=None if rng.random() < 0.3 else float(rng.uniform(1, 1e5)),
    )


EXTRAS = [None, {'age': 1}, {'scale': np.float32(0.5)}, TEACHER, [PARAMS, PARAMS]]


@pytest.mark.parametrize('variant', [None, 'heavy_stragglers'])
def test_no_choice_lowers_a_clients_time_but_doing_less_work(variant):
    """Over random pairs of round configurations and client extras: whenever one
    choice gives a client a shorter time than another (same client, same
    dispatch), it trains fewer examples or moves fewer bytes; equal work, equal time."""
    lat = shipped(variant)
    rng = np.random.default_rng(0)
    for _ in range(300):
        choices = [(random_round_config(rng), EXTRAS[rng.integers(len(EXTRAS))]) for _ in (0, 1)]
        works = [
            dispatch_work(c.local_steps, c.client_batch_size, FLOPS_PER_EXAMPLE, PARAMS, x)
            for c, x in choices
        ]
        client, dispatch = int(rng.integers(NUM_CLIENTS)), int(rng.integers(1000))
        (ta, tb) = (lat.latency_s(client, dispatch, w) for w in works)
        (a, b), (ca, cb) = works, (c for c, _ in choices)
        examples_a = ca.local_steps * ca.client_batch_size
        examples_b = cb.local_steps * cb.client_batch_size
        if ta < tb:
            assert examples_a < examples_b or a.download_bytes < b.download_bytes
        if tb < ta:
            assert examples_b < examples_a or b.download_bytes < a.download_bytes
        if (examples_a, a.download_bytes) == (examples_b, b.download_bytes):
            assert ta == tb


def test_more_of_any_work_is_never_faster():
    lat = shipped('heavy_stragglers')
    rng = np.random.default_rng(1)
    for _ in range(500):
        a = ClientWork(rng.uniform(0, 1e12), int(rng.integers(0, 1e8)), int(rng.integers(0, 1e8)))
        field = str(rng.choice(['train_flops', 'download_bytes', 'upload_bytes']))
        more = dataclasses.replace(a, **{field: getattr(a, field) + int(rng.integers(1, 1e6))})
        client, dispatch = int(rng.integers(NUM_CLIENTS)), int(rng.integers(100))
        assert lat.latency_s(client, dispatch, more) > lat.latency_s(client, dispatch, a)


def test_device_parts_follow_the_formula():
    cfg = {
        'kind': 'device',
        'compute': {'median_flops_per_s': 2e9},
        'network': {'median_downlink_mbps': 8.0, 'median_uplink_mbps': 2.0},
    }
    lat = latency.from_config(cfg, 3, seed=0)  # sigmas 0: exactly the medians, no wait
    parts = lat.parts(1, 7, ClientWork(4e9, 1_000_000, 500_000))
    assert parts == {'wait_s': 0.0, 'compute_s': 2.0, 'download_s': 1.0, 'upload_s': 2.0}
    assert lat.latency_s(1, 7, ClientWork(4e9, 1_000_000, 500_000)) == 5.0


def test_stragglers_are_slower_devices_on_slower_links():
    lat = latency.from_config(LATENCY_CONFIGS[None], 474, seed=0)
    slow = lat.groups()['stragglers']
    w = ClientWork(1.92e9, 500_000, 500_000)
    medians = {
        flag: {
            k: np.median(
                [lat.parts(c, d, w)[k] for c in np.flatnonzero(slow == flag) for d in (0, 1)]
            )
            for k in ('compute_s', 'download_s', 'upload_s')
        }
        for flag in (True, False)
    }
    for part in ('compute_s', 'download_s', 'upload_s'):
        assert medians[True][part] > 2.5 * medians[False][part], part


def test_tree_nbytes_counts_arrays_of_every_framework():
    import jax.numpy as jnp
    import torch

    @dataclasses.dataclass
    class Box:
        weights: object
        step: int

    tree = {
        'np': np.zeros(10, np.float32),
        'jax': jnp.zeros((2, 5), jnp.bfloat16),
        'torch': [torch.zeros(3, dtype=torch.float64), None],
        'box': Box(np.zeros(2, np.int8), 4),
        'name': 'ab',
    }
    assert tree_nbytes(tree) == 40 + 20 + 24 + 2 + 8 + 2
    with pytest.raises(TypeError, match=r"tree\['odd'\] is a set"):
        tree_nbytes({'odd': {1, 2}})


def test_extras_the_harness_cannot_size_fail_the_trial():
    with pytest.raises(SubmissionError, match='client_extras: TypeError: .*is a object'):
        dispatch_work(1, 1, 1.0, PARAMS, {'opaque': object()})


def test_a_delta_larger_than_the_model_is_refused():
    check_upload(PARAMS, tree_nbytes(PARAMS))
    bigger = {k: v for k, v in PARAMS.items()} | {'head': np.zeros(10000, np.float64)}
    with pytest.raises(SubmissionError, match='more than the model it was computed from'):
        check_upload(bigger, tree_nbytes(PARAMS))


def test_no_work_is_the_wait_alone():
    lat = shipped()
    for client, dispatch in every_report(lat):
        parts = lat.parts(client, dispatch, NO_WORK)
        assert parts['compute_s'] == parts['download_s'] == parts['upload_s'] == 0.0
        assert lat.latency_s(client, dispatch) == parts['wait_s']


def test_device_configuration_reports_every_problem():
    cfg = {
        'kind': 'device',
        'wait': {'kind': 'device'},
        'compute': {'median_flops_per_s': 0, 'client_sigma': 9},
        'network': {'median_downlink_mbps': 10, 'uplink': 3},
    }
    with pytest.raises(UserInputError) as err:
        latency.from_config(cfg, 5, seed=0)
    message = str(err.value)
    for expected in (
        'latency.wait.kind: a wait is a plain delay (lognormal, mixture)',
        'latency.compute.median_flops_per_s = 0 is out of range (0.0',
        'latency.compute.client_sigma = 9 is out of range [0.0, 5.0]',
        "latency.network: unknown key(s) ['uplink']",
        "latency.network: missing key 'median_uplink_mbps'",
    ):
        assert expected in message, message

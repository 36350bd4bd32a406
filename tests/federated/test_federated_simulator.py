"""The event-driven simulator on planted latencies: order, clock, deadlines, staleness."""

from __future__ import annotations

import pickle

import pytest

from harness import spec_federated
from harness.trial.federated import latency
from harness.trial.federated.simulator import ARRIVAL, DEADLINE, EVAL, Simulator
from harness.trial.federated.work import NO_WORK, ClientWork
from workloads.federated_shakespeare.workload import LATENCY_CONFIGS


class FakeHooks:
    """Records what the simulator asks of the model side."""

    def __init__(self):
        self.version = 0
        self.retained = {0}
        self.computed, self.updates, self.released = [], [], []
        self.sim = None
        self.work = NO_WORK  # what client_work reports (tests of the work-dependent clock set it)

    def compute(self, dispatches):
        # Only versions the simulator asked to retain are ever computed from.
        assert {d.version for d in dispatches} <= self.retained
        self.computed.append([d.dispatch_id for d in dispatches])

    def retain(self, versions):
        assert self.version in versions
        self.retained = set(versions)

    def server_update(self, arrivals, version):
        assert version == self.version
        self.updates.append(
            (self.sim.clock_s, [(a.dispatch.client, a.staleness, a.on_time) for a in arrivals])
        )
        self.version += 1
        self.retained.add(self.version)

    def release(self, dispatch_ids):
        self.released.extend(dispatch_ids)

    def client_work(self):
        return self.work


def make_sim(config, latency_cfg, num_clients, seed=0, eval_period_s=None, work=NO_WORK):
    hooks = FakeHooks()
    hooks.work = work
    sim = Simulator(
        config,
        latency.from_config(latency_cfg, num_clients, seed),
        num_clients,
        seed,
        hooks,
        eval_period_s,
    )
    hooks.sim = sim
    sim.start()
    return sim, hooks


def sync(m, over=0.0, deadline=None, late='drop'):
    return spec_federated.RoundConfig(
        mode='sync',
        local_steps=1,
        client_batch_size=1,
        clients_per_round=m,
        over_selection=over,
        round_deadline_s=deadline,
        late_updates=late,
    )


def planted(*seconds):
    return {'kind': 'planted', 'by_client': list(seconds)}


def run_until(sim, time_s):
    events = []
    while sim.next_time() <= time_s:
        events.append(sim.step())
    return events


def test_round_closes_at_the_mth_report_and_drops_the_rest():
    sim, hooks = make_sim(sync(2, over=1.0, deadline=30), planted(10, 50, 20, 200), 4)
    events = run_until(sim, 60)
    # Rounds close at the 2nd report (t=20, 40, 60); the slow clients never count.
    assert [t for t, _ in hooks.updates] == [20, 40, 60]
    assert all(sorted(c for c, _, _ in u) == [0, 2] for _, u in hooks.updates)
    assert all(s == 0 and on_time for _, u in hooks.updates for _, s, on_time in u)
    # Only the reports that are used are computed, one cohort per round.
    assert [len(c) for c in hooks.computed] == [2, 2, 2]
    assert len(hooks.released) == 2 * 3  # clients 1 and 3, every round
    # The clock only moves forward, through arrivals only (deadlines are never reached).
    times = [e.time_s for e in events]
    assert times == sorted(times) and {e.kind for e in events} == {ARRIVAL}
    assert sim.counts['dropped'] == 6 and sim.round == 3


def test_deadline_closes_a_round_with_fewer_reports():
    sim, hooks = make_sim(sync(2, over=1.0, deadline=30), planted(10, 100, 200, 300), 4)
    events = run_until(sim, 90)
    assert [t for t, _ in hooks.updates] == [30, 60, 90]
    assert all([c for c, _, _ in u] == [0] for _, u in hooks.updates)
    assert [e.kind for e in events] == [ARRIVAL, DEADLINE] * 3


def test_round_without_reports_leaves_the_model_unchanged():
    sim, hooks = make_sim(sync(2, over=0.0, deadline=30), planted(100, 100, 100), 3)
    run_until(sim, 95)
    assert hooks.updates == [] and hooks.computed == []
    assert sim.counts['empty_rounds'] == 3 and sim.version == 0 and sim.clock_s == 90


def test_report_at_exactly_the_deadline_is_on_time():
    sim, hooks = make_sim(sync(2, over=1.0, deadline=30), planted(30, 100, 100, 100), 4)
    run_until(sim, 30)
    assert hooks.updates == [(30.0, [(0, 0, True)])]


def test_without_deadline_the_round_waits_for_m_reports():
    sim, hooks = make_sim(sync(3), planted(5, 7000, 9), 3)
    run_until(sim, 7000)
    assert hooks.updates == [(7000.0, [(0, 0, True), (2, 0, True), (1, 0, True)])]


def test_late_reports_are_delivered_with_their_staleness():
    sim, hooks = make_sim(sync(1, over=1.0, late='deliver'), planted(10, 25), 2)
    run_until(sim, 30)
    # Round 0 dispatches both; c0 closes it at 10. c1 stays busy, so rounds 1 and 2
    # dispatch c0 alone. c1 reports at 25, after its round closed: delivered at the
    # next close (t=30) with staleness 2 (two updates since its download).
    assert hooks.updates == [
        (10.0, [(0, 0, True)]),
        (20.0, [(0, 0, True)]),
        (30.0, [(0, 0, True), (1, 2, False)]),
    ]
    assert hooks.computed[0] == [0, 1]  # the late report is computed with its cohort
    assert sim.counts['late_delivered'] == 1


def test_async_buffer_staleness_and_clock():
    config = spec_federated.RoundConfig(
        mode='async', local_steps=1, client_batch_size=1, concurrency=2, buffer_size=2
    )
    lat = {'kind': 'planted', 'by_dispatch': [10, 30, 5, 100, 1, 1000, 1000, 1000]}
    sim, hooks = make_sim(config, lat, 4)
    run_until(sim, 31)
    # d0 (t=10) and d2 (t=15) fill the first buffer; d1 (downloaded at version 0,
    # arriving at t=30 after one update) has staleness 1; d4 (version 1) 0.
    assert [(t, [s for _, s, _ in u]) for t, u in hooks.updates] == [(15.0, [0, 0]), (31.0, [1, 0])]
    assert len(sim.in_flight) == 2  # concurrency is kept
    # Computed lazily, when an uncomputed report arrives: d3 (dispatched at t=15)
    # waits for d4's arrival at t=31, and the two form one cohort.
    assert hooks.computed == [[0, 1], [2], [3, 4]]


def test_evaluations_come_after_updates_at_the_same_time():
    sim, hooks = make_sim(sync(1, over=0.0), planted(30, 30), 2, eval_period_s=60)
    events = run_until(sim, 120)
    at_60 = [e.kind for e in events if e.time_s == 60]
    assert at_60 == [ARRIVAL, EVAL]
    assert [e.time_s for e in events if e.kind == EVAL] == [60, 120]


def heavy_sim(seed):
    config = sync(5, over=0.4, deadline=600, late='deliver')
    return make_sim(config, LATENCY_CONFIGS['heavy_stragglers'], 40, seed=seed, eval_period_s=3600)


def steps(sim, n):
    for _ in range(n):
        sim.step()


def test_same_seed_same_events_other_seed_other_events():
    (a, ha), (b, hb), (c, _) = heavy_sim(1), heavy_sim(1), heavy_sim(2)
    for sim in (a, b, c):
        steps(sim, 300)
    assert a.digest == b.digest and ha.updates == hb.updates
    assert a.digest != c.digest


def test_state_dict_resumes_the_simulation_exactly():
    whole, _ = heavy_sim(3)
    steps(whole, 400)
    first, _ = heavy_sim(3)
    steps(first, 170)
    saved = pickle.loads(pickle.dumps(first.state_dict()))
    resumed, hooks = heavy_sim(3)
    resumed.load_state_dict(saved)
    hooks.version, hooks.retained = resumed.version, resumed._live_versions()
    steps(resumed, 230)
    assert resumed.digest == whole.digest
    assert resumed.clock_s == whole.clock_s and resumed.counts == whole.counts


@pytest.mark.parametrize('seed', [0, 1])
def test_every_dispatch_is_accounted_for(seed):
    sim, hooks = heavy_sim(seed)
    steps(sim, 500)
    c = sim.counts
    assert c['dispatched'] == c['arrived'] + len(sim.in_flight) + c['dropped']
    assert sim.busy.sum() == len(sim.in_flight)


def test_next_time_skips_cancelled_reports_and_passed_deadlines():
    sim, hooks = make_sim(sync(1, over=1.0, deadline=500), planted(10, 300), 2)
    assert sim.step().time_s == 10  # c0 closes round 0; c1's report and the deadline are void
    # Round 1 dispatched both again at t=10: next is c0's report at 20, not the void
    # events of round 0 (c1 at 300, deadline at 500).
    assert sim.next_time() == 20
    run_until(sim, 1000)
    assert len(hooks.updates) == 100 and sim.clock_s == 1000


def test_async_slot_timeout_frees_the_slot_but_keeps_the_report():
    config = spec_federated.RoundConfig(
        mode='async',
        local_steps=1,
        client_batch_size=1,
        concurrency=1,
        buffer_size=1,
        async_slot_timeout_s=50,
    )
    # d0 takes 1000 s; at t=50 its slot goes to d1 (10 s), then d2 (10 s)...
    lat = {'kind': 'planted', 'by_dispatch': [1000] + [10] * 200}
    sim, hooks = make_sim(config, lat, 3)
    run_until(sim, 1000)
    assert sim.counts['slot_timeouts'] == 1
    assert hooks.updates[0] == (60.0, [(hooks.updates[0][1][0][0], 0, True)])
    # d0 reports at t=1000, stale by the 94 updates made since it downloaded (t=60..990).
    index, (_, late) = next((i, u) for i, u in enumerate(hooks.updates) if u[1][0][1] > 0)
    assert hooks.updates[index][0] == 1000.0 and late == [(late[0][0], index, True)]
    assert index == 94


def test_the_work_of_a_dispatch_sets_its_arrival():
    cfg = {
        'kind': 'device',
        'wait': {'kind': 'lognormal', 'median_s': 60, 'sigma': 0.5},
        'compute': {'median_flops_per_s': 1e9, 'client_sigma': 0.5, 'report_sigma': 0.2},
        'network': {'median_downlink_mbps': 8, 'median_uplink_mbps': 2, 'client_sigma': 0.5},
    }
    lat = latency.from_config(cfg, 8, 0)
    arrivals = {}
    for flops in (1e10, 2e10):
        work = ClientWork(flops, 1_000_000, 1_000_000)
        sim, hooks = make_sim(sync(3, over=1.0), cfg, 8, work=work)
        assert len(sim.in_flight) == 6
        for d in sim.in_flight.values():
            assert d.arrival_time_s - d.dispatch_time_s == lat.latency_s(
                d.client, d.dispatch_id, work
            )
            assert d.upload_bytes == 1_000_000
        arrivals[flops] = {d.dispatch_id: d.arrival_time_s for d in sim.in_flight.values()}
    # Twice the compute: every report arrives later.
    assert all(arrivals[2e10][i] > arrivals[1e10][i] for i in arrivals[1e10])


def test_dispatches_and_deliveries_are_counted_by_latency_group():
    cfg = {'kind': 'planted', 'by_client': [10, 10, 50, 10], 'groups': {'stragglers': [2]}}
    sim, hooks = make_sim(sync(2, over=1.0, deadline=30, late='deliver'), cfg, 4)
    run_until(sim, 100)
    c = sim.counts
    delivered = [(client, on) for _, u in hooks.updates for client, _, on in u]
    assert c['delivered'] == len(delivered)
    assert c['delivered_on_time'] == sum(on for _, on in delivered)
    # Client 2 (the straggler) reports at 50, after its round closed: delivered late.
    assert c['delivered_stragglers'] == sum(client == 2 for client, _ in delivered) >= 1
    assert c['delivered_on_time_stragglers'] == 0
    assert c['dispatched_stragglers'] >= 1 and c['dispatched'] > c['dispatched_stragglers']

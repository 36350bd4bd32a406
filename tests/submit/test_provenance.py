"""The submission's content hash: stable under caches and imports, changed by any edit."""

from __future__ import annotations

import hashlib

from harness.leaderboard import provenance
from tests.submit import fakes


def test_hash_is_sha256_over_sorted_relative_paths_and_bytes(tmp_path):
    sub = fakes.make_submission(tmp_path / 'algo', frameworks=('pytorch',))
    expected = hashlib.sha256()
    for name in ('pytorch_submission.py', 'search_space.yaml'):
        data = (sub / name).read_bytes()
        expected.update(name.encode() + b'\0' + str(len(data)).encode() + b'\0' + data)
    assert provenance.content_hash(sub) == expected.hexdigest()


def test_caches_and_hidden_files_do_not_change_the_hash(tmp_path):
    sub = fakes.make_submission(tmp_path / 'algo')
    before = provenance.content_hash(sub)
    (sub / '__pycache__').mkdir()
    (sub / '__pycache__' / 'pytorch_submission.cpython-311.pyc').write_bytes(b'\x00')
    (sub / '.git').mkdir()
    (sub / '.git' / 'HEAD').write_text('ref: refs/heads/main\n')
    (sub / '.DS_Store').write_bytes(b'junk')
    (sub / 'stale.pyc').write_bytes(b'\x01')
    assert provenance.content_hash(sub) == before


def test_any_edit_rename_or_new_file_changes_the_hash(tmp_path):
    sub = fakes.make_submission(tmp_path / 'algo')
    seen = {provenance.content_hash(sub)}
    (sub / 'jax_submission.py').write_text(fakes.SIGNATURES + '\n', encoding='utf-8')
    seen.add(provenance.content_hash(sub))
    (sub / 'helpers').mkdir()
    (sub / 'helpers' / 'util.py').write_text('X = 1\n')
    seen.add(provenance.content_hash(sub))
    (sub / 'helpers' / 'util.py').rename(sub / 'helpers' / 'util2.py')
    seen.add(provenance.content_hash(sub))
    assert len(seen) == 4


def test_identity_names_the_entry_and_keeps_the_search_space(tmp_path):
    sub = fakes.make_submission(tmp_path / 'my_algo', frameworks=('jax',))
    ident = provenance.identify(str(sub))
    assert ident.entry_name == f'my_algo-{ident.content_sha256[:8]}'
    assert ident.search_space_text == fakes.SPACE
    assert sorted(ident.files) == ['jax_submission.py', 'search_space.yaml']
    record = ident.record(suite='demo')
    assert record['content_sha256'] == ident.content_sha256
    assert record['timetrial_version'] == '0.1.0' and record['suite'] == 'demo'


def test_a_single_file_submission_hashes_its_search_space_too(tmp_path):
    (tmp_path / 'algo.py').write_text(fakes.SIGNATURES, encoding='utf-8')
    alone = provenance.content_hash(tmp_path / 'algo.py')
    (tmp_path / 'search_space.yaml').write_text(fakes.SPACE, encoding='utf-8')
    assert provenance.content_hash(tmp_path / 'algo.py') != alone
    assert provenance.identify(str(tmp_path / 'algo.py')).entry_name.startswith('algo-')

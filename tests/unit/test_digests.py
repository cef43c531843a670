"""The compact id sets behave as Python sets of the ids would (`sources/common/digests.py`)."""

from __future__ import annotations

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.common.digests import (
    DigestSet,
    SortedDigests,
    hash_bytes,
    hashes_of_halves,
    id_digests,
    stored_digest_sql,
)

ids = st.text(min_size=0, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(ids, max_size=30), max_size=12), st.lists(ids, max_size=5))
def test_a_digest_set_says_what_a_set_of_the_ids_would(batches, first):
    model = set(first)
    digests = DigestSet(id_digests(first))
    for batch in batches:
        expected_new = []
        for i in batch:
            expected_new.append(i not in model)
            model.add(i)
        assert digests.add_new(id_digests(batch)).tolist() == expected_new
        assert len(digests) == len(model)
        probe = [*batch, "never-added-\u2603"]
        assert digests.contains(id_digests(probe)).tolist() == [i in model for i in probe]


def test_lone_surrogates_and_trailing_zero_bytes_stay_distinct():
    tricky = ["\ud800", "\udfff", "a", "a\x00", "", "\x00"]
    digests = id_digests(tricky)
    assert len({tuple(pair) for pair in digests.tolist()}) == len(tricky)


def test_positions_find_each_digest_or_minus_one():
    stored, _ = SortedDigests.of(id_digests(["a", "b", "c"]))
    probe = id_digests(["c", "x", "a"])
    at = stored.positions(probe)
    assert at[1] == -1
    assert (stored.pairs()[at[[0, 2]]] == probe[[0, 2]]).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1)), max_size=40), st.data())
def test_digests_whose_first_halves_are_equal_are_told_apart(pairs, data):
    """Digests are searched by their first 8 bytes: ties there (made common here) are still exact."""
    digests = np.array(pairs, dtype=np.uint64).reshape(-1, 2)
    model = {tuple(p) for p in pairs}
    found = DigestSet()
    split = data.draw(st.integers(0, len(pairs)))
    found.add_new(digests[:split])
    found.add_new(digests[split:])
    assert len(found) == len(model)
    probe = np.array([*pairs, (1, 7), (4, 0)], dtype=np.uint64).reshape(-1, 2)
    assert found.contains(probe).tolist() == [tuple(p) in model for p in probe.tolist()]
    stored, _ = SortedDigests.of(digests)
    assert len(stored) == len(model)
    at = stored.positions(probe)
    assert [a >= 0 for a in at.tolist()] == [tuple(p) in model for p in probe.tolist()]
    assert all((stored.pairs()[a] == p).all() for a, p in zip(at, probe, strict=True) if a >= 0)


def test_a_stored_hash_that_is_not_32_hex_digits_equals_no_real_hash():
    real = "0f" * 16
    out = hash_bytes([real, None, "zz" * 16, "0f" * 8, 42])
    assert out[0] == bytes.fromhex(real)
    assert (out[1:] == np.array([bytes(16)], dtype="S16")).all()
    assert not (out[1:] == out[0]).any()


stored_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # what DuckDB can hold
stored_hashes = st.one_of(
    st.none(),
    stored_texts,
    st.text("0123456789abcdefABCDEF", min_size=31, max_size=33),
    st.binary(min_size=16, max_size=16).map(bytes.hex),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(stored_texts, stored_hashes), min_size=1, max_size=20))
def test_duckdb_digests_stored_ids_and_hashes_as_python_does(rows):
    """The warehouse digests its stored ids and reads their hashes itself (`stored_digest_sql`): the same
    digest as `id_digests` for any text, and `hash_bytes`' reading of any hash, valid or not."""
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (id VARCHAR, h VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", rows)
        got = con.execute(f"SELECT {stored_digest_sql('id', 'h')} FROM t ORDER BY rowid").fetchnumpy()
    ids = [i for i, _ in rows]
    assert np.column_stack([got["id_hi"], got["id_lo"]]).tolist() == id_digests(ids).tolist()
    assert hashes_of_halves(got["hash_hi"], got["hash_lo"]).tolist() == hash_bytes(h for _, h in rows).tolist()

"""The compact id sets behave as Python sets of the ids would (`sources/common/digests.py`)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.common.digests import DigestSet, hash_bytes, id_digests, positions_in

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
    assert len(set(digests.tolist())) == len(tricky)
    # fixed-width: values that differ only by trailing zero bytes are not equal
    padded = np.array([b"ab" + bytes(14), b"ab" + bytes(13) + b"\x01"], dtype="S16")
    assert positions_in(np.sort(padded), padded).tolist() == [0, 1]


def test_positions_find_each_digest_or_minus_one():
    stored = np.unique(id_digests(["a", "b", "c"]))
    probe = id_digests(["c", "x", "a"])
    at = positions_in(stored, probe)
    assert at[1] == -1
    assert stored[at[0]] == probe[0] and stored[at[2]] == probe[2]


def test_a_stored_hash_that_is_not_32_hex_digits_equals_no_real_hash():
    real = "0f" * 16
    out = hash_bytes([real, None, "zz" * 16, "0f" * 8, 42])
    assert out[0] == bytes.fromhex(real)
    assert (out[1:] == np.array([bytes(16)], dtype="S16")).all()
    assert not (out[1:] == out[0]).any()

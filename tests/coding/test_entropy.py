import math

import numpy as np
import pytest

from codec.coding import entropy
from codec.coding.bitstream import BitstreamError
from codec.coding.entropy import EntropyTables
from codec.errors import CodecError

K = 256


def skewed_codes(shape, seed=0, scale=8.0) -> np.ndarray:
    """Codes drawn from a geometric-like distribution over [0, K): entropy well below 8 bits."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.exponential(scale, shape).astype(np.int64), K - 1)


def tables_for(codes: np.ndarray, model_id: str = "00ff") -> EntropyTables:
    return EntropyTables(model_id, entropy.count_codes(codes, K))


def test_count_codes_known_answer():
    codes = np.array([[[0, 1, 1], [2, 2, 2]]])  # one item, two codebooks
    counts = entropy.count_codes(codes, 4)
    np.testing.assert_array_equal(counts, [[1, 2, 0, 0], [0, 0, 3, 0]])


def test_probabilities_are_add_one_smoothed():
    tables = EntropyTables("ab", np.array([[3, 0, 1, 0]]))
    np.testing.assert_allclose(tables.probabilities(0), [4 / 8, 1 / 8, 2 / 8, 1 / 8])


def test_round_trip_and_saving_close_to_entropy():
    codes = skewed_codes((2, 3, 5000))
    tables = tables_for(codes)
    data = tables.encode(codes)
    np.testing.assert_array_equal(tables.decode(data, 2, 3, 5000), codes)
    ideal_bits = entropy.mean_code_bits(tables) * codes.size
    assert ideal_bits < 0.7 * 8 * codes.size  # the test data really is compressible
    # A range coder lands within a fraction of a percent of the ideal size (+ a few words).
    assert len(data) * 8 == pytest.approx(ideal_bits, rel=0.01)


def test_codes_never_measured_still_round_trip():
    tables = EntropyTables("ab", np.concatenate([np.full((1, K // 2), 1000),
                                                 np.zeros((1, K // 2), int)], axis=1))
    codes = np.arange(K).reshape(1, 1, K)  # half of these never occurred in "training"
    assert (tables.decode(tables.encode(codes), 1, 1, K) == codes).all()


def test_fewer_codebooks_than_measured():
    codes = skewed_codes((1, 4, 300))
    tables = tables_for(codes)
    np.testing.assert_array_equal(tables.decode(tables.encode(codes[:, :2]), 1, 2, 300),
                                  codes[:, :2])


def test_more_codebooks_than_measured_is_refused():
    tables = tables_for(skewed_codes((1, 2, 10)))
    with pytest.raises(CodecError, match="cover 2 codebooks"):
        tables.encode(skewed_codes((1, 3, 10)))


def test_payload_too_small_for_the_claimed_codes_is_refused():
    tables = tables_for(skewed_codes((1, 1, 1000)))
    with pytest.raises(BitstreamError, match="too small"):
        tables.decode(b"\0" * 8, 1, 1, 10 ** 9)


def test_damaged_stream_raises_only_bitstream_error_or_gives_codes():
    codes = skewed_codes((1, 2, 400))
    tables = tables_for(codes)
    data = bytearray(tables.encode(codes))
    for position in range(0, len(data), max(1, len(data) // 16)):
        broken = bytearray(data)
        broken[position] ^= 0xFF
        try:
            got = tables.decode(bytes(broken), 1, 2, 400)
        except BitstreamError:
            continue
        assert got.shape == (1, 2, 400) and got.max() < K


@pytest.mark.parametrize("junk", [bytes(4096), b"\x01\x02\x03\x04", b"\xff" * 8])
def test_whole_words_of_junk_after_the_codes_are_damage(junk):
    """A range decoder stops when it has the codes it was asked for: words after them
    (a .qca whose payload was padded, header and checksum made to match) are refused."""
    codes = skewed_codes((1, 2, 400))
    tables = tables_for(codes)
    with pytest.raises(BitstreamError, match="damaged"):
        tables.decode(tables.encode(codes) + junk, 1, 2, 400)


def test_tables_id_names_the_counts():
    codes = skewed_codes((1, 2, 100))
    a, b = tables_for(codes), tables_for(codes)
    assert a.tables_id == b.tables_id
    assert tables_for(codes[..., :50]).tables_id != a.tables_id
    assert tables_for(codes, model_id="0f0f").tables_id != a.tables_id


def test_save_load_and_find(tmp_path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "model.safetensors").write_bytes(b"")
    tables = tables_for(skewed_codes((1, 2, 100)), model_id="abcd")
    assert entropy.tables_dir(run / "best" / "model.safetensors") == run
    assert entropy.tables_dir(run / "checkpoints" / "step-000100") == run
    assert entropy.tables_dir(run) == run
    path = entropy.save_tables(tables, entropy.tables_dir(run) / entropy.TABLES_FILE)
    loaded = entropy.load_tables(path)
    assert loaded.model_id == "abcd" and loaded.tables_id == tables.tables_id
    assert entropy.find_tables(run / "best" / "model.safetensors", "abcd") is not None
    assert entropy.find_tables(run, "abcd") is not None
    assert entropy.find_tables(run, "other") is None  # tables of another model are not used


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "entropy.safetensors"
    path.write_bytes(b"not safetensors")
    with pytest.raises(CodecError, match="cannot read entropy tables"):
        entropy.load_tables(path)


def test_mean_code_bits_of_uniform_counts_is_log2_k():
    tables = EntropyTables("ab", np.full((2, K), 10))
    assert entropy.mean_code_bits(tables) == pytest.approx(math.log2(K))

"""Fuzzing of the files the toolkit reads from anywhere, each target in a few seconds:
packet streams (``.qcs``, read as ``codec stream-decode`` reads them) and model files
(a ``codec export`` file and a run's step checkpoint, read by ``codec.load``). The
``.qca`` container has its own in tests/coding/test_bitstream.py.

Every target starts from a valid file and damages it two ways: hostile values in its
header fields (wrong types, NaN, infinities, huge and negative numbers, integers of
5000 digits, strings, missing keys), written with valid checksums and hashes as a
careful attacker would; and random bytes changed and the file cut. Reading must then
give a CodecError (for a model file, one line naming the file), or what the file
still soundly holds (a stream's whole packets before the damage, the model it
held): never another exception, never audio decoded from a damaged header. A last
target declares huge sizes and checks, in a process of its own, that nothing of
that size is allocated.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile import run_python

import codec
from codec import Codec, PretrainedModel, model_config
from codec.checkpoint import META_FILE, MODEL_FILE, _file_record, save_checkpoint
from codec.coding.packets import STREAM_MAGIC, STREAM_VERSION, PacketReader, StreamHeader
from codec.config import Config
from codec.errors import CodecError
from codec.export import export_model
from codec.network.model import compute_model_id
from codec.pcm_stream import SAMPLE_BYTES, decode_pcm_stream, encode_pcm_stream, float_to_pcm

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON texts no header field should take (except that a model hint may be any short
# string or null): wrong types, NaN, infinities, huge, negative and tiny numbers,
# integers of 5000 digits, strings, containers. A field may also go missing (None).
HOSTILE = ["null", "true", "-1", "0", "-0.5", "1e-300", "NaN", "Infinity", "-Infinity",
           "1e999", "9" * 5000, "-" + "9" * 5000, '"x"', '""', '"' + "9" * 5000 + '"', "[]",
           "{}", "[1, 2]", '{"a": 1}']
# The same values as strings holding them, as a model file's metadata holds JSON.
VALUES = [*HOSTILE, *(json.dumps(text) for text in HOSTILE), None]


# --- JSON documents with hostile values -------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put into a document as it is: NaN, a 5000-digit integer, ..."""
    text: str


class Embedded(dict):
    """A JSON object held as text in a string of the outer document (a model config in
    safetensors metadata)."""


def render(node: Any) -> str:
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Embedded):
        return json.dumps(render(dict(node)))
    if isinstance(node, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(map(render, node)) + "]"
    return json.dumps(node)


def edited(doc: Any, edits: list[tuple[tuple, str | None]]) -> str:
    """The JSON text of ``doc`` with the value at each path (a tuple of keys) replaced by
    the JSON text given, or removed for None. The deepest edits go first, so that an edit
    of a whole section replaces what was edited inside it."""
    doc = copy.deepcopy(doc)
    for path, value in sorted(edits, key=lambda edit: -len(edit[0])):
        node = doc
        for key in path[:-1]:
            node = node[key]
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = Raw(value)
    return render(doc)


def key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """The path of every value in the objects of ``node``, sections and their fields."""
    if not isinstance(node, dict):
        return []
    return [path for key, value in node.items()
            for path in [(*prefix, key), *key_paths(value, (*prefix, key))]]


def damaged(data: bytes, draw, near: int) -> tuple[bytes, int]:
    """``data`` with up to 4 bytes changed (often within its first ``near`` bytes,
    where the header lies) and cut anywhere; and the first byte that differs from
    ``data`` (its length when none does)."""
    blob = bytearray(data)
    reach = draw(st.sampled_from([min(near, len(data)), len(data)]))
    for _ in range(draw(st.integers(0, 4))):
        blob[draw(st.integers(0, reach - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(blob)))
    first = next((i for i, (a, b) in enumerate(zip(blob, data, strict=False)) if a != b), len(data))
    return bytes(blob[:cut]), min(first, cut)


# --- .qcs packet streams -----------------------------------------------------------------


@dataclass(repr=False)  # a failing example shows no kilobytes of PCM
class Stream:
    """A valid stream, and what reading it gives."""
    model: PretrainedModel
    data: bytes
    header: dict
    header_end: int  # bytes of its prefix, header and the header's checksum
    packet_ends: list[int]
    packet_frames: list[int]
    pcm: bytes  # the decoded stream


def decoded(model: PretrainedModel, blob: bytes) -> tuple[int, bytes]:
    """What ``codec stream-decode`` does with ``blob``: (frames decoded, PCM written)."""
    sink = io.BytesIO()
    summary = decode_pcm_stream(model, PacketReader(io.BytesIO(blob)), sink)
    return summary.frames, sink.getvalue()


@pytest.fixture(scope="module")
def stream() -> Stream:
    """15 frames of tone and noise from the tiny causal model, three frames a packet; a
    whole number of frames, so that the last packet cuts no padding."""
    torch.manual_seed(0)
    model = PretrainedModel.from_network(Codec(model_config("tiny", causal=True)))
    samples = 15 * model.network.hop_length
    t = torch.arange(samples) / model.sample_rate
    audio = 0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(samples)
    sink = io.BytesIO()
    encode_pcm_stream(model, io.BytesIO(float_to_pcm(audio[None])[0]), sink, channels=1,
                      n_q=model.config.n_q, packet_frames=3)
    reader = PacketReader(io.BytesIO(sink.getvalue()))
    header_end, ends, frames = reader.offset, [], []
    for codes in reader:
        ends.append(reader.offset)
        frames.append(codes.shape[-1])
    assert reader.length == samples and sum(frames) == 15
    return Stream(model, sink.getvalue(), dataclasses.asdict(reader.header), header_end, ends,
                  frames, decoded(model, sink.getvalue())[1])


def with_stream_header(data: bytes, text: bytes) -> bytes:
    """``data`` with its header replaced by ``text`` and a valid checksum."""
    (size,) = struct.unpack_from("<I", data, 5)
    body = struct.pack("<4sBI", STREAM_MAGIC, STREAM_VERSION, len(text)) + text
    return body + struct.pack("<I", zlib.crc32(body)) + data[9 + size + 4:]


def refused_in_stream_header(name: str, value: str | None) -> bool:
    """Whether a stream header must be refused for ``value`` (None: missing) in field
    ``name``: every hostile value is, but a model hint may be any short string or none,
    and a field of no name is missing anyway."""
    if name == "model_hint":
        return not (value in (None, "null") or value.startswith('"') and len(value) < 4000)
    return not (name == "unknown" and value is None)


STREAM_EDITS = [((name,), value)
                for name in [*(f.name for f in dataclasses.fields(StreamHeader)), "unknown"]
                for value in VALUES if refused_in_stream_header(name, value)]


@FUZZ
@given(st.lists(st.sampled_from(STREAM_EDITS), min_size=1, max_size=3))
def test_qcs_hostile_header_fields_are_refused_before_any_audio(stream, edits):
    blob = with_stream_header(stream.data, edited(stream.header, edits).encode())
    with pytest.raises(CodecError):
        decoded(stream.model, blob)


@pytest.mark.parametrize("text", [b"[" * 100_000, b"[]", b"null", b'"x"', b"NaN", b"\xff\xfe",
                                  b'{"model_id": ', b""])
def test_qcs_header_that_is_no_object_is_refused(stream, text):
    with pytest.raises(CodecError):
        decoded(stream.model, with_stream_header(stream.data, text))


@FUZZ
@given(st.data())
def test_qcs_damaged_or_cut_decodes_exactly_the_whole_packets_before_the_damage(stream, data):
    blob, first = damaged(stream.data, data.draw, near=stream.header_end + 16)
    if first < stream.header_end:
        with pytest.raises(CodecError):
            decoded(stream.model, blob)
        return
    frames, pcm = decoded(stream.model, blob)
    whole = sum(f for f, end in zip(stream.packet_frames, stream.packet_ends, strict=False)
                if end <= first)
    assert frames == whole
    assert pcm == stream.pcm[:whole * stream.model.network.hop_length * SAMPLE_BYTES]


# --- model files -------------------------------------------------------------------------


@dataclass(repr=False)
class ModelFiles:
    """A tiny untrained model as an export and as a run's step checkpoint."""
    model_id: str
    export: Path
    step: Path
    originals: dict[Path, bytes]

    def restore(self) -> None:
        for path, data in self.originals.items():
            path.write_bytes(data)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> ModelFiles:
    torch.manual_seed(0)
    network = Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    root = tmp_path_factory.mktemp("fuzz_models")
    export = export_model(network, root / "model.safetensors", target_lufs=-23.0)
    step = save_checkpoint(root / "run" / "checkpoints" / "step-000001",
                           model_state=network.state_dict(), config=Config(model=network.config),
                           step=1, model_id=compute_model_id(network))
    files = [export, step / MODEL_FILE, step / META_FILE]
    return ModelFiles(compute_model_id(network), export, step,
                      {path: path.read_bytes() for path in files})


def check_load(path: Path, model_id: str | None) -> str:
    """Load ``path``: "refused" for a CodecError of one line that names ``path``, else
    "loaded", which must be the model ``model_id`` (any id when None). Any other
    exception fails the test."""
    try:
        model = codec.load(path)
    except CodecError as error:
        assert "\n" not in str(error) and str(path) in str(error), str(error)
        return "refused"
    assert model_id is None or model.model_id == model_id
    return "loaded"


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    """A safetensors file's header (its JSON configs as :class:`Embedded`) and tensors."""
    (size,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + size])
    metadata = header["__metadata__"]
    for key in ("model_config", "coding_config"):
        metadata[key] = Embedded(json.loads(metadata[key]))
    return header, data[8 + size:]


def joined_safetensors(text: str, tensors: bytes) -> bytes:
    return struct.pack("<Q", len(text.encode())) + text.encode() + tensors


def safetensors_paths(header: dict) -> list[tuple]:
    """Every metadata field and config field, and the entries of a few tensors (the
    first, and a codebook, which the model id covers)."""
    names = sorted(name for name in header if name != "__metadata__")
    chosen = [names[0], next(name for name in names if name.endswith(".embed"))]
    return [("__metadata__",), *key_paths(header["__metadata__"], ("__metadata__",)),
            *((name,) for name in chosen), *(path for name in chosen
                                             for path in key_paths(header[name], (name,)))]


def untouched_id(model_files: ModelFiles, edits: list) -> str | None:
    """The model id a load must give after ``edits``: none when they touch an id."""
    return None if any("model_id" in path for path, _ in edits) else model_files.model_id


@st.composite
def header_edits(draw, paths: list[tuple]) -> list[tuple[tuple, str | None]]:
    return draw(st.lists(st.tuples(st.sampled_from(paths), st.sampled_from(VALUES)),
                         min_size=1, max_size=3))


@FUZZ
@given(st.data())
def test_export_with_hostile_header_fields_is_refused_in_one_line(model_files, data):
    model_files.restore()
    header, tensors = split_safetensors(model_files.originals[model_files.export])
    edits = data.draw(header_edits(safetensors_paths(header)))
    model_files.export.write_bytes(joined_safetensors(edited(header, edits), tensors))
    check_load(model_files.export, untouched_id(model_files, edits))


@FUZZ
@given(st.data())
def test_checkpoint_with_hostile_meta_or_header_fields_is_refused_in_one_line(model_files,
                                                                              data):
    model_files.restore()
    model_file, meta_file = model_files.step / MODEL_FILE, model_files.step / META_FILE
    header, tensors = split_safetensors(model_files.originals[model_file])
    meta = json.loads(model_files.originals[meta_file])
    in_header = data.draw(st.booleans())
    edits = data.draw(header_edits(safetensors_paths(header) if in_header else key_paths(meta)))
    if in_header:  # the hash in meta.json made to match, as a careful attacker would
        model_file.write_bytes(joined_safetensors(edited(header, edits), tensors))
        meta["files"][MODEL_FILE] = _file_record(model_file)
        meta_file.write_text(json.dumps(meta))
    else:
        meta_file.write_text(edited(meta, edits))
    check_load(model_files.step, untouched_id(model_files, edits))


@FUZZ
@given(st.data())
def test_damaged_or_cut_model_files_are_refused_in_one_line(model_files, data):
    model_files.restore()
    export, step = model_files.export, model_files.step
    path = data.draw(st.sampled_from([export, step / MODEL_FILE, step / META_FILE]))
    original = model_files.originals[path]
    near = 8 + struct.unpack_from("<Q", original)[0] if path.suffix == ".safetensors" else 0
    path.write_bytes(damaged(original, data.draw, near=near or len(original))[0])
    if path.parent == step and path.name == MODEL_FILE and data.draw(st.booleans()):
        meta = json.loads(model_files.originals[step / META_FILE])
        meta["files"][MODEL_FILE] = _file_record(path)
        (step / META_FILE).write_text(json.dumps(meta))
    check_load(export if path == export else step, model_files.model_id)


# --- huge declared sizes, in bounded memory ----------------------------------------------

HUGE_SIZES_SCRIPT = """
import io, json, resource, struct, sys, tempfile, zlib
from pathlib import Path
import torch
import codec
from codec import Codec, PretrainedModel, model_config
from codec.coding.packets import PacketReader
from codec.errors import CodecError
from codec.export import export_model
from codec.pcm_stream import decode_pcm_stream

root = Path(tempfile.mkdtemp())
network = Codec(model_config("tiny", causal=True))
model = PretrainedModel.from_network(network)
good = export_model(network, root / "good.safetensors").read_bytes()
(size,) = struct.unpack_from("<Q", good)
header, tensors = json.loads(good[8:8 + size]), good[8 + size:]
name = sorted(k for k in header if k != "__metadata__")[0]
config = json.loads(header["__metadata__"]["model_config"])

def safetensors(change):
    edited = json.loads(json.dumps(header))
    change(edited)
    text = json.dumps(edited).encode()
    return struct.pack("<Q", len(text)) + text + tensors

cases = [
    struct.pack("<Q", 1 << 62) + good[8:],  # a header of 4 EiB
    safetensors(lambda h: h[name].update(shape=[1 << 31, 1 << 31], data_offsets=[0, 1 << 62])),
    safetensors(lambda h: h[name].update(shape=[1 << 20, 1 << 20])),
    safetensors(lambda h: h["__metadata__"].update(model_config=json.dumps(
        {**config, "widths": [16384] * 5, "latent_dim": 16384, "codebook_size": 65536}))),
]
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for index, data in enumerate(cases):
    path = root / f"huge{index}.safetensors"
    path.write_bytes(data)
    try:
        codec.load(path)
    except CodecError:
        pass
    else:
        sys.exit(f"case {index} loaded")

# A stream whose header asks for the largest packets, and whose packet claims 65535
# frames of them but holds 10 bytes.
text = json.dumps({"model_id": model.model_id, "sample_rate": 24000, "hop_length": 320,
                   "coded_channels": 1, "channels": 64, "n_q": 4, "codebook_size": 256,
                   "gain": 1.0}).encode()
body = struct.pack("<4sBI", b"\\x89QCS", 1, len(text)) + text
stream = body + struct.pack("<I", zlib.crc32(body)) + b"C" + struct.pack("<H", 65535) + bytes(10)
sink = io.BytesIO()
summary = decode_pcm_stream(model, PacketReader(io.BytesIO(stream)), sink)
assert summary.frames == 0 and sink.getvalue() == b""
peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak_after - peak_before) // 1024)
"""
# What the peak may grow by while reading them: each case above, read without its
# limits, would ask for gigabytes to exabytes.
MAX_GROWTH_MB = 200


def test_huge_declared_sizes_are_refused_in_bounded_memory():
    result = run_python(HUGE_SIZES_SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < MAX_GROWTH_MB

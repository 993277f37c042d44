"""Fuzz what bpfbox-run reads from a compiled profile: its ELF structure and the metadata
JSON in it.  Whatever was tampered with, reading must end in metadata.MetadataError (a
one-line message, exit status 1), never another exception.  Budget: FUZZ_INPUTS / 10 each.
"""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import pytest
from bpfbox.contract import abi
from bpfbox.runtime import bounded_json, metadata
from elftools.elf.elffile import ELFFile
from hypothesis import given, seed
from hypothesis import strategies as st

from .test_fuzz import INPUTS, SEED, fuzz_settings

FUZZ_SETTINGS = fuzz_settings(max(INPUTS // 10, 20))
#: The ELF header, where offsets and counts of everything else live.
ELF_HEADER_SIZE = 64


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tampered")


def _read_or_metadata_error(path: Path) -> None:
    with contextlib.suppress(metadata.MetadataError):
        metadata.read(str(path))


@seed(SEED)
@FUZZ_SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=6))
def test_tampered_elf_structure(compiled_mylogin: bytes, workdir: Path, edits) -> None:
    """Overwrite bytes of the ELF header and the section header table."""
    image = bytearray(compiled_mylogin)
    (section_headers,) = struct.unpack_from("<Q", image, 0x28)
    regions = [(0, ELF_HEADER_SIZE), (section_headers, len(image) - section_headers)]
    for position, value in edits:
        start, size = regions[position % 2]
        image[start + position % max(size, 1)] = value
    path = workdir / "tampered.bpf.o"
    path.write_bytes(image)
    _read_or_metadata_error(path)


_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def _tampered_documents(draw, document: dict) -> str:
    """The real metadata with some values replaced, or JSON text broken on purpose."""
    doc = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 4))):
        target = doc
        while isinstance(target, (dict, list)) and target and draw(st.booleans()):
            key = draw(
                st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target)))
            )
            if not isinstance(target[key], (dict, list)):
                break
            target = target[key]
        if isinstance(target, dict) and target:
            target[draw(st.sampled_from(sorted(target)))] = draw(_json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(_json_values)
    text = json.dumps(doc)
    breakage = draw(st.integers(0, 5))
    if breakage == 0:
        depth = draw(st.sampled_from((9, 1000, 100_000)))
        text = '{"rules": ' + "[" * depth + "]" * depth + "}"
    elif breakage == 1:
        text = text.replace("1", "1" + "0" * draw(st.sampled_from((19, 30, 5000))), 1)
    elif breakage == 2:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut]
    return text


def test_tampered_metadata_documents(compiled_mylogin: bytes, workdir: Path) -> None:
    path = workdir / "real.bpf.o"
    path.write_bytes(compiled_mylogin)
    real = metadata.read(str(path))
    document = _document_of(path)

    @seed(SEED)
    @FUZZ_SETTINGS
    @given(text=_tampered_documents(document))
    def check(text: str) -> None:
        with contextlib.suppress(bounded_json.BoundedJsonError, metadata.MetadataError):
            doc = bounded_json.loads(
                text, max_chars=metadata.MAX_METADATA_CHARS, max_depth=metadata.MAX_METADATA_DEPTH
            )
            metadata.parse(doc, str(path), real.features, real.rodata)

    check()


def _document_of(path: Path) -> dict:
    """The metadata JSON bpfboxc embedded (the section holds nothing else)."""
    with path.open("rb") as stream:
        data = ELFFile(stream).get_section_by_name(abi.METADATA_SECTION).data()
    return json.loads(data[: data.index(b"\0")])

"""QR codes segno cannot make on its own: GS1 codes (FNC1 in first position).

ISO/IEC 18004:2015 7.4.8.2: a GS1 QR code starts with the mode indicator 0101 (FNC1, first
position) before its first segment; its data is GS1 element strings, where a variable-length
field is ended by FNC1, written as GS (0x1D) in byte mode or `%` in alphanumeric mode. segno
writes the segments, the error correction and the matrix; only the mode indicator is added
here, through segno's encoder steps (so the code is built by the standard's own steps, not by
the reader under test).
"""

from __future__ import annotations

from typing import cast

import numpy as np
from segno import consts, encoder

FNC1_FIRST = 0b0101


def gs1_qr(content: str, error: str = "M", mode: str | None = None) -> np.ndarray:
    """The module matrix (True = dark) of a GS1 QR code holding `content` (GS1 element strings,
    fields ended by `%` in alphanumeric mode or GS in byte mode)."""
    segments = encoder.prepare_data(content, encoder.normalize_mode(mode), None)
    level = encoder.normalize_errorlevel(error)
    # is_sa reserves 20 bits: room for the 4-bit FNC1 indicator, whatever segno's own count.
    version = encoder.find_version(segments, level, eci=False, micro=False, is_sa=True)
    buff = encoder.Buffer()
    buff.append_bits(FNC1_FIRST, 4)
    for segment in segments:
        encoder.write_segment(buff, segment, None, encoder.version_range(version), False)
    # segno's table mixes Micro QR rows keyed by None, so mypy infers dict[int, object].
    capacity = cast("dict[int, int]", consts.SYMBOL_CAPACITY[version])[level]
    encoder.write_terminator(buff, capacity, None, len(buff))
    encoder.write_padding_bits(buff, version, len(buff))
    encoder.write_pad_codewords(buff, version, capacity, len(buff))
    buff = encoder.make_final_message(version, level, buff)
    width = encoder.calc_matrix_size(version)
    matrix = encoder.make_matrix(width, width)
    encoder.add_finder_patterns(matrix, width, width)
    encoder.add_alignment_patterns(matrix, width, width)
    encoder.add_codewords(matrix, buff, version)
    mask, matrix = encoder.find_and_apply_best_mask(matrix, width, width, None)
    encoder.add_format_info(matrix, version, level, mask)
    encoder.add_version_info(matrix, version)
    return np.asarray(matrix, dtype=bool)


def render(modules: np.ndarray, scale: int = 4, quiet: int = 4) -> np.ndarray:
    """A grey image of a module matrix: dark modules black, `quiet` light modules round it."""
    padded = np.pad(np.asarray(modules, dtype=bool), quiet)
    return np.kron(~padded, np.ones((scale, scale), bool)).astype(np.uint8) * 255

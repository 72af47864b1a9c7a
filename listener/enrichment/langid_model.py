"""Loading py3langid's packaged model, restricted to some languages, in little memory.

Owns reading the model file (``py3langid/data/model.npz.xz``: an LZMA-compressed ``.npz`` of
ptc, pc, classes, nextmove, nextmove_row, out_feat) into a ``LanguageIdentifier`` equal to the
one py3langid's own loader builds and ``ptc[:, keep]`` / ``pc[keep]`` restrict.

Why: py3langid's loader holds every array whole at once and copies the 39 MB transition table
once more to convert it, so a process loading it peaked about 50 MB above where it settled
(measured: a parser worker at 171 MB while loading, 123 MB after). Here the big members are
streamed: the transition table goes straight into its ``array`` in 1 MiB reads, and the
per-feature probabilities are read a block of rows at a time, keeping only the wanted columns.
The values are the same bytes, so every verdict is the same. A model whose layout differs from
the one described (another py3langid release) falls back to py3langid's loader.
"""

from __future__ import annotations

import lzma
import shutil
import sys
import tempfile
import zipfile
from array import array
from collections.abc import Collection
from typing import IO, Any

_CHUNK = 1 << 20
_ROWS = 8192  # rows of ptc read at a time (2.3 MB with py3langid 0.4's 142 columns)
_TYPECODES = {2: "H", 4: "I"}


def load_identifier(languages: Collection[str]) -> Any:
    """py3langid's packaged model as a LanguageIdentifier for ``languages`` only."""
    import numpy as np
    from py3langid.langid import (  # type: ignore[import-untyped]  # ships no type hints
        MODEL_DIR,
        MODEL_FILE,
        LanguageIdentifier,
    )

    with tempfile.TemporaryFile(suffix=".npz") as tmp:
        with lzma.open(MODEL_DIR / MODEL_FILE) as src:
            shutil.copyfileobj(src, tmp, length=_CHUNK)
        tmp.seek(0)
        with zipfile.ZipFile(tmp) as npz:
            names = set(npz.namelist())
            wanted = {f"{n}.npy" for n in ("ptc", "pc", "classes", "nextmove", "nextmove_row")}
            if not wanted | {"out_feat.npy"} <= names:
                return _fallback(languages)
            classes = _small(npz, "classes.npy").tolist()
            keep = [i for i, code in enumerate(classes) if code in languages]
            ptc = _columns(npz, "ptc.npy", keep)
            nextmove = _table(npz, "nextmove.npy")
            row = _table(npz, "nextmove_row.npy")
            if ptc is None or nextmove is None or row is None:
                return _fallback(languages)
            pc = _small(npz, "pc.npy")[keep]
            output = _small(npz, "out_feat.npy").tolist()
    return LanguageIdentifier(
        np.asarray(ptc), pc, [classes[i] for i in keep], nextmove, output, tk_row=row
    )


def _fallback(languages: Collection[str]) -> Any:
    from py3langid.langid import (  # (typed Any: see load_identifier)
        MODEL_DIR,
        MODEL_FILE,
        LanguageIdentifier,
    )
    from py3langid.modelio import load_model  # type: ignore[import-untyped]

    ptc, pc, classes, nextmove, row, output = load_model(MODEL_DIR / MODEL_FILE)
    keep = [i for i, code in enumerate(classes) if code in languages]
    return LanguageIdentifier(
        ptc[:, keep], pc[keep], [classes[i] for i in keep], nextmove, output, tk_row=row
    )


def _header(fp: IO[bytes]) -> tuple[tuple[int, ...], bool, Any]:
    from numpy.lib import format as npy

    version = npy.read_magic(fp)
    if version == (1, 0):
        return npy.read_array_header_1_0(fp)
    return npy.read_array_header_2_0(fp)


def _small(npz: zipfile.ZipFile, name: str) -> Any:
    from numpy.lib import format as npy

    with npz.open(name) as fp:
        return npy.read_array(fp, allow_pickle=False)


def _native(dtype: Any) -> bool:
    order = str(dtype.byteorder)
    return order in ("|", "=") or order == ("<" if sys.byteorder == "little" else ">")


def _table(npz: zipfile.ZipFile, name: str) -> array[int] | None:
    """A 1-d unsigned integer member as an ``array`` (what py3langid's DFA walk indexes),
    read in chunks; None if it is not one."""
    with npz.open(name) as fp:
        shape, _, dtype = _header(fp)
        code = _TYPECODES.get(dtype.itemsize)
        if len(shape) != 1 or dtype.kind != "u" or code is None or not _native(dtype):
            return None
        out: array[int] = array(code)
        size = shape[0] * dtype.itemsize
        while size > 0:
            chunk = fp.read(min(_CHUNK, size))
            if not chunk:
                return None
            out.frombytes(chunk)
            size -= len(chunk)
        return out


def _columns(npz: zipfile.ZipFile, name: str, keep: list[int]) -> Any:
    """The ``keep`` columns of a 2-d C-order member, read a block of rows at a time."""
    import numpy as np

    with npz.open(name) as fp:
        shape, fortran, dtype = _header(fp)
        if len(shape) != 2 or fortran:
            return None
        rows, width = shape
        blocks = []
        for start in range(0, rows, _ROWS):
            count = min(_ROWS, rows - start)
            data = fp.read(count * width * dtype.itemsize)
            block = np.frombuffer(data, dtype=dtype).reshape(count, width)
            blocks.append(block[:, keep].copy())
        return np.concatenate(blocks) if blocks else np.zeros((0, len(keep)), dtype=dtype)

"""The official CIFAR-10 python release (``cifar-10-batches-py``, or its ``.tar.gz``).

Five training batches ``data_batch_1..5`` and ``test_batch``, each a pickled dict with
``b"data"`` (10000×3072 uint8, channel-planar R, G, B rows of 32×32) and ``b"labels"``, plus
``batches.meta`` with ``b"label_names"``. The pickles are never unpickled: :func:`_parse` reads
their opcodes and builds only dicts, lists, numbers, strings and numeric arrays itself, so a
tampered file cannot run code.
"""
from __future__ import annotations

import pickle
import pickletools
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .types import RawData

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"

class _Array:
    """numpy's ``_reconstruct(ndarray, …)``, waiting for the BUILD that gives its contents."""

    value: np.ndarray | None = None


def _dtype(code: Any) -> np.dtype:
    """A numeric numpy type from its name or a dtype already checked here; nothing else."""
    dt = code if isinstance(code, np.dtype) else np.dtype(code) if isinstance(code, str) else None
    if dt is None or dt.kind not in "?biuf":
        raise ValueError(f"array type {code!r} (only numbers are read)")
    return dt


def _call(fn: tuple[str, str], args: Any) -> Any:
    """The few calls a CIFAR batch's pickle makes, done here, by name, without importing."""
    if fn == ("_codecs", "encode") and len(args) == 2 and args[1] == "latin1":
        return args[0].encode("latin1")  # Python 3's form of a bytes object
    if fn[1] == "dtype":
        return _dtype(args[0])
    if fn[1] == "_reconstruct":
        return _Array()
    if fn[1] == "scalar":
        return np.frombuffer(args[1], _dtype(args[0]))[0]
    raise ValueError(f"call of {fn[0]}.{fn[1]}")


def _build(obj: Any, state: Any) -> Any:
    if isinstance(obj, np.dtype):
        return obj.newbyteorder(">") if state[1] == ">" else obj
    if isinstance(obj, _Array):
        _, shape, dt, fortran, raw = state
        obj.value = np.frombuffer(raw, dtype=_dtype(dt)).reshape(
            shape, order="F" if fortran else "C")
        return obj.value
    raise ValueError(f"BUILD of a {type(obj).__name__}")


_GLOBALS = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
            *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
              for n in ("_reconstruct", "scalar"))}


def _parse(data: bytes) -> Any:
    """The object a pickle describes, read from its opcodes (:func:`pickletools.genops`), never
    by :mod:`pickle`: dicts, lists, tuples, numbers, strings and numeric numpy arrays. Any
    other global (a class or function a tampered file would have the unpickler call) is
    refused by name."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        k = marks.pop()
        items = stack[k:]
        del stack[k:]
        return items

    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            module, attr = (arg.split(" ", 1) if name == "GLOBAL"
                            else (stack.pop(-2), stack.pop()))
            if (module, attr) not in _GLOBALS:
                raise pickle.UnpicklingError(f"refusing to load {module}.{attr} from a data file")
            stack.append((module, attr))
        elif name == "REDUCE":
            args = stack.pop()
            stack.append(_call(stack.pop(), args))
        elif name == "BUILD":
            state = stack.pop()
            stack[-1] = _build(stack[-1], state)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("EMPTY_DICT", "EMPTY_LIST"):
            stack.append({} if name == "EMPTY_DICT" else [])
        elif name in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            n = ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3").index(name)
            items = stack[len(stack) - n:] if n else []
            del stack[len(stack) - n:]
            stack.append(tuple(items))
        elif name in ("TUPLE", "LIST", "DICT"):
            items = pop_mark()
            stack.append(tuple(items) if name == "TUPLE" else list(items) if name == "LIST"
                         else dict(zip(items[::2], items[1::2])))
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else pop_mark()
            stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = stack[-2:] if name == "SETITEM" else pop_mark()
            if name == "SETITEM":
                del stack[-2:]
            stack[-1].update(zip(items[::2], items[1::2]))
        elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            stack.append(arg.encode("latin1"))  # Python 2's str: bytes (encoding="bytes")
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
                      "BINFLOAT", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
                      "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            stack.append(arg)
        else:
            raise ValueError(f"pickle opcode {name}")
    if len(stack) != 1:
        raise ValueError("no single object at the end")
    return stack[0]


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _parse(data)
    except pickle.UnpicklingError as e:
        raise DataError(f"{where}: {e}; not an official CIFAR batch — fetch it again") from None
    except Exception as e:  # noqa: BLE001 - any failure means a bad file
        raise DataError(f"{where}: not a readable CIFAR batch ({type(e).__name__}: {e}); the file"
                        " is truncated or corrupt — delete it and fetch it again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(obj).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    if "data" not in d or ("labels" not in d and "fine_labels" not in d):
        raise DataError(f"{where}: CIFAR batch without 'data' and 'labels'")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: expected data N×3072 and N labels, got {x.shape} and {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def _assemble(read: dict[str, bytes], where: str) -> RawData:
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in read]
    if missing:
        raise DataError(f"{where}: CIFAR python batches incomplete, missing {', '.join(missing)}")
    parts = [_batch(read[n], f"{where}/{n}") for n in TRAIN_BATCHES]
    x_test, y_test = _batch(read[TEST_BATCH], f"{where}/{TEST_BATCH}")
    classes: list[str] | None = None
    if META in read:
        meta = _unpickle(read[META], f"{where}/{META}")
        names = meta.get("label_names")
        if names is not None:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if classes is None:
        classes = [str(i) for i in range(int(max(p[1].max() for p in parts)) + 1)]
    return RawData(x_train=np.concatenate([p[0] for p in parts]),
                   y_train=np.concatenate([p[1] for p in parts]),
                   x_test=x_test, y_test=y_test, classes=classes, format="cifar-python")


def is_cifar_dir(path: Path) -> bool:
    """True if ``path`` holds the python batches (``data_batch_1`` … ``test_batch``)."""
    return (Path(path) / TRAIN_BATCHES[0]).is_file() and (Path(path) / TEST_BATCH).is_file()


def load_cifar_dir(path: Path) -> RawData:
    """Load ``cifar-10-batches-py`` from a folder."""
    path = Path(path)
    read = {n: (path / n).read_bytes() for n in (*TRAIN_BATCHES, TEST_BATCH, META)
            if (path / n).is_file()}
    return _assemble(read, str(path))


def tar_has_cifar_batches(names: list[str]) -> bool:
    """True if a tar's member names include the python batches."""
    return any(n.rsplit("/", 1)[-1] == TRAIN_BATCHES[0] for n in names)


def load_cifar_tar(path: Path) -> RawData:
    """Load the python batches straight from ``cifar-10-python.tar.gz`` (no extraction)."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    read: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted:
                    f = tf.extractfile(m)
                    if f is not None:
                        read[base] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e}); it is truncated or corrupt — delete"
                        " it and fetch it again") from None
    return _assemble(read, str(path))

"""Optional sentiment backend: a local Hugging Face-style model directory exported to ONNX.

Owns loading such a directory and turning texts into the same `Sentiment` the built-in scorer
returns, plus `load_scorer`, which picks the backend named by `[sentiment] backend`. Rules it
applies:

- The directory holds `model.onnx` (or `onnx/model.onnx`, as Optimum exports lay it out),
  `tokenizer.json` (the `tokenizers` library format) and `config.json` with `id2label`.
  A plain PyTorch/safetensors checkpoint is refused with a hint to export it
  (`optimum-cli export onnx --model DIR OUT`).
- Strictly offline: `tokenizers.Tokenizer.from_file` and an onnxruntime `InferenceSession` on
  the CPU provider; no hub access, no `transformers`. onnxruntime and tokenizers are imported
  only when an `OnnxScorer` is built, so listener runs without them (extra: `listener[onnx]`).
- Labels: each `id2label` name is lower-cased and matched against negative/neutral/positive
  (also "neg"/"neu"/"pos"). Models whose labels are all generic `LABEL_<i>` are mapped by
  position: 3 classes -> LABEL_0 negative, LABEL_1 neutral, LABEL_2 positive (the
  cardiffnlp/twitter-roberta convention); 2 classes -> LABEL_0 negative, LABEL_1 positive (the
  SST-2 convention). Any other label set is a configuration error. Two-class models never say
  neutral.
- Inputs: the ones the graph declares, among input_ids, attention_mask and token_type_ids (any
  other input is a configuration error), in the integer type the graph declares. Texts are
  truncated to the model's maximum length: `model_max_length` from tokenizer_config.json, else
  `max_position_embeddings` from config.json (less the position offset RoBERTa-family models
  reserve), else 256.
- The first output (or the one named "logits") holds logits [batch, classes]; they are
  softmaxed. label = most probable class; score = P(positive) - P(negative); confidence = the
  chosen label's probability; reasons = ("model: <directory name>",). `lang` is not used: the
  model decides what languages it understands.
- `version` is "onnx:" + the first 12 hex digits of the sha256 over the names and bytes of
  model.onnx, tokenizer.json and config.json, so it changes whenever any of them changes.
- Every load problem is a one-line `ValueError` starting with the setting it concerns
  ("sentiment.model_path: ..." / "sentiment.backend = ..."); config loading turns it into a
  ConfigError. Pure and synchronous; CPU-bound, so callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from listener.enrichment.sentiment import LABELS, Scorer, Sentiment

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MISSING_PACKAGES = (
    "sentiment.backend = 'onnx' needs onnxruntime and tokenizers: pip install 'listener[onnx]'"
)
DEFAULT_MAX_LENGTH = 256
BATCH_SIZE = 32
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LABEL_ALIASES = {"neg": "negative", "neu": "neutral", "pos": "positive"}
POSITION_OFFSET_MODELS = ("roberta", "xlm-roberta", "camembert", "bertweet")
INT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32"}


def model_file(model_dir: Path) -> Path | None:
    """The ONNX graph of a model directory: model.onnx, or onnx/model.onnx (Optimum layout)."""
    for path in (model_dir / "model.onnx", model_dir / "onnx" / "model.onnx"):
        if path.is_file():
            return path
    return None


def version_of(files: Sequence[Path]) -> str:
    """Version string of an ONNX model from the names and bytes of its files."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"onnx:{digest.hexdigest()[:12]}"


def map_labels(id2label: dict[str, str], where: str) -> tuple[str, ...]:
    """Our label for each output index, from a config.json `id2label` (see module docstring)."""
    try:
        names = [str(id2label[str(i)]) for i in range(len(id2label))]
    except KeyError:
        raise ValueError(
            f"{where}: id2label keys must be 0..{len(id2label) - 1}, got {sorted(id2label)}"
        ) from None
    generic = [f"label_{i}" for i in range(len(names))]
    if [n.lower() for n in names] == generic and len(names) in (2, 3):
        return ("negative", "positive") if len(names) == 2 else LABELS
    mapped = tuple(LABEL_ALIASES.get(n.lower(), n.lower()) for n in names)
    if len(set(mapped)) != len(mapped) or not {"negative", "positive"} <= set(mapped) <= set(
        LABELS
    ):
        raise ValueError(
            f"{where}: id2label {names} is not negative/positive(/neutral) or LABEL_0..; "
            "rename the labels in config.json"
        )
    return mapped


def max_length_of(model_dir: Path, config: dict[str, Any]) -> int:
    """Longest token sequence the model accepts (see module docstring)."""
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        length = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("model_max_length")
        if isinstance(length, int) and 0 < length <= 100_000:  # HF writes 1e30 for "unset"
            return length
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        if config.get("model_type") in POSITION_OFFSET_MODELS:
            positions -= int(config.get("pad_token_id") or 1) + 1
        return positions
    return DEFAULT_MAX_LENGTH


def import_backend() -> tuple[Any, Any]:
    """The onnxruntime and tokenizers modules, or a one-line error naming the extra."""
    try:
        return importlib.import_module("onnxruntime"), importlib.import_module("tokenizers")
    except ImportError:
        raise ValueError(MISSING_PACKAGES) from None


def check_model_dir(model_dir: Path) -> Path:
    """The model directory's ONNX graph; a ValueError when a file is missing (a cheap check
    that loads nothing: configuration checks use it too)."""
    where = f"sentiment.model_path: {model_dir}"
    if not model_dir.is_dir():
        raise ValueError(f"{where} is not a directory")
    graph = model_file(model_dir)
    if graph is None:
        raise ValueError(
            f"{where} has no model.onnx; export one with `optimum-cli export onnx --model DIR OUT`"
        )
    for name in ("tokenizer.json", "config.json"):
        if not (model_dir / name).is_file():
            raise ValueError(f"{where} has no {name}")
    return graph


def check_backend() -> None:
    """A ValueError naming the extra when onnxruntime or tokenizers is not installed (found,
    not imported: importing onnxruntime takes a while)."""
    if any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "tokenizers")):
        raise ValueError(MISSING_PACKAGES)


class OnnxScorer:
    """Scores texts with an ONNX sentiment model in a local directory."""

    def __init__(self, model_dir: Path) -> None:
        where = f"sentiment.model_path: {model_dir}"
        graph = check_model_dir(model_dir)
        ort, tokenizers = import_backend()
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}/config.json is not JSON: {exc}") from None
        if not isinstance(config, dict) or not isinstance(config.get("id2label"), dict):
            raise ValueError(f"{where}/config.json has no id2label")
        self.labels = map_labels(config["id2label"], f"{where}/config.json")
        self.max_length = max_length_of(model_dir, config)
        self.name = model_dir.name
        self.version = version_of([graph, model_dir / "tokenizer.json", model_dir / "config.json"])

        try:
            self._tokenizer: Any = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ValueError(f"{where}/tokenizer.json cannot be read: {exc}") from None
        pad_id = config.get("pad_token_id")
        if not isinstance(pad_id, int):
            padding = self._tokenizer.padding
            pad_id = padding["pad_id"] if padding else 0
        self._tokenizer.enable_truncation(max_length=self.max_length)
        pad_token = self._tokenizer.id_to_token(pad_id) or "[PAD]"
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self._pad_id: int = pad_id

        try:
            self._session: Any = ort.InferenceSession(
                str(graph), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped exception classes
            raise ValueError(f"{where}/{graph.name} cannot be loaded: {exc}") from None
        self._inputs: dict[str, str] = {}
        for node in self._session.get_inputs():
            if node.name not in KNOWN_INPUTS or node.type not in INT_TYPES:
                raise ValueError(
                    f"{where}/{graph.name} wants input {node.name!r} of {node.type}; only "
                    f"integer {', '.join(KNOWN_INPUTS)} are supported"
                )
            self._inputs[node.name] = INT_TYPES[node.type]
        if "input_ids" not in self._inputs:
            raise ValueError(f"{where}/{graph.name} has no input_ids input")
        outputs = [node.name for node in self._session.get_outputs()]
        self._output = "logits" if "logits" in outputs else outputs[0]

    def score(self, text: str, lang: str) -> Sentiment:
        return self.score_many([(text, lang)])[0]

    def score_many(self, items: Sequence[tuple[str, str]]) -> list[Sentiment]:
        """Scores in batches of similar length; results in the order of `items`."""
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        results: list[Sentiment | None] = [None] * len(items)
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            probabilities = self._probabilities([items[i][0] for i in chunk])
            for i, row in zip(chunk, probabilities, strict=True):
                results[i] = self._sentiment([float(p) for p in row])
        return [r for r in results if r is not None]

    def _sentiment(self, row: list[float]) -> Sentiment:
        p = dict(zip(self.labels, row, strict=True))
        label = max(p, key=p.__getitem__)
        score = p["positive"] - p["negative"]
        return Sentiment(label, score, p[label], (f"model: {self.name}",))

    def _probabilities(self, texts: list[str]) -> npt.NDArray[np.float64]:
        import numpy as np  # lazily: numpy comes with onnxruntime, not with listener

        encodings = self._tokenizer.encode_batch(texts)
        width = max(1, max(len(e.ids) for e in encodings))  # all-empty batch: one pad token

        def column(field: str, fill: int) -> list[list[int]]:
            return [(v := list(getattr(e, field))) + [fill] * (width - len(v)) for e in encodings]

        arrays = {
            "input_ids": column("ids", self._pad_id),
            "attention_mask": column("attention_mask", 0),
            "token_type_ids": column("type_ids", 0),
        }
        feed = {name: np.array(arrays[name], dtype=dtype) for name, dtype in self._inputs.items()}
        (logits,) = self._session.run([self._output], feed)
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(self.labels):
            raise ValueError(
                f"sentiment.model_path: model {self.name} returned logits of shape "
                f"{logits.shape}, expected [batch, {len(self.labels)}]"
            )
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return probabilities


def load_scorer(backend: str, model_path: Path | None) -> Scorer | OnnxScorer:
    """The scorer `[sentiment]` asks for: "builtin" (model_path: optional directory of built-in
    weights) or "onnx" (model_path: the model directory, required)."""
    if backend == "builtin":
        return Scorer(model_path)
    if backend == "onnx":
        if model_path is None:
            raise ValueError("sentiment.model_path: backend 'onnx' needs a local model directory")
        return OnnxScorer(model_path)
    raise ValueError(f"sentiment.backend: unknown backend {backend!r}; use 'builtin' or 'onnx'")

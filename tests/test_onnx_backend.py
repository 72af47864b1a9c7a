"""The optional ONNX sentiment backend, against a tiny model this file builds itself.

The model: a WordLevel tokenizer over a small English/German vocabulary, and an ONNX graph
Gather(embedding) -> mean over the tokens the attention mask keeps -> MatMul + Add -> logits,
with hand-set weights: embedding dimension 0 carries negativity ("terrible", "schrecklich"),
1 positivity ("great", "toll"), 2 neutral content words. Tests that need onnx, onnxruntime and
tokenizers skip without them; the missing-package message is tested with or without them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from listener.enrichment.onnx import MISSING_PACKAGES, OnnxScorer, load_scorer, map_labels
from listener.enrichment.sentiment import Scorer, Sentiment

NEGATIVE_WORDS = ("terrible", "awful", "broken", "schrecklich", "kaputt")
POSITIVE_WORDS = ("great", "love", "excellent", "toll", "super")
NEUTRAL_WORDS = ("the", "service", "is", "was", "train", "at", "noon", "der", "die", "zug", "ist")
VOCAB = ["[PAD]", "[UNK]", *NEGATIVE_WORDS, *POSITIVE_WORDS, *NEUTRAL_WORDS]
LABELS_3 = {"0": "negative", "1": "neutral", "2": "positive"}

Build = Callable[..., Path]


def write_tokenizer(path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = tokenizers.normalizers.Lowercase()
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(path))


def embedding(strength: float) -> list[list[float]]:
    rows = []
    for word in VOCAB:
        if word in NEGATIVE_WORDS:
            rows.append([strength, 0.0, 0.0])
        elif word in POSITIVE_WORDS:
            rows.append([0.0, strength, 0.0])
        elif word == "[PAD]":
            rows.append([0.0, 0.0, 0.0])
        else:
            rows.append([0.0, 0.0, 1.0])
    return rows


def write_graph(path: Path, classes: int, strength: float, token_type_ids: bool) -> None:
    onnx = pytest.importorskip("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    # hidden dims (negativity, positivity, neutral) -> class logits
    weights = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.8, 0.0]]  # neg, neu, pos
    bias = [0.0, 0.3, 0.0]
    if classes == 2:
        weights, bias = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [0.0, 0.0]
    table = [x for row in embedding(strength) for x in row]
    inits = [
        helper.make_tensor("E", tp.FLOAT, [len(VOCAB), 3], table),
        helper.make_tensor("W", tp.FLOAT, [3, classes], [x for row in weights for x in row]),
        helper.make_tensor("B", tp.FLOAT, [classes], bias),
        helper.make_tensor("axis1", tp.INT64, [1], [1]),
        helper.make_tensor("axis2", tp.INT64, [1], [2]),
        helper.make_tensor("one", tp.FLOAT, [], [1.0]),
    ]
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["emb0"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=tp.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count0"], keepdims=0),
        helper.make_node("Max", ["count0", "one"], ["count"]),
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("MatMul", ["mean", "W"], ["projected"]),
        helper.make_node("Add", ["projected", "B"], ["logits"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", tp.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", tp.INT64, ["batch", "seq"]),
    ]
    if token_type_ids:  # a segment embedding of zeros, as BERT has (non-zero for segment 1)
        inputs.append(helper.make_tensor_value_info("token_type_ids", tp.INT64, ["batch", "seq"]))
        inits.append(helper.make_tensor("T", tp.FLOAT, [2, 3], [0.0] * 3 + [9.0] * 3))
        nodes[:0] = [helper.make_node("Gather", ["T", "token_type_ids"], ["segment"])]
        nodes.insert(2, helper.make_node("Add", ["emb0", "segment"], ["emb"]))
    else:
        nodes.insert(1, helper.make_node("Identity", ["emb0"], ["emb"]))
    graph = helper.make_graph(
        nodes,
        "tiny-sentiment",
        inputs,
        [helper.make_tensor_value_info("logits", tp.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def build(tmp_path: Path) -> Build:
    pytest.importorskip("onnxruntime")

    def make(
        name: str = "tiny-sentiment",
        id2label: dict[str, str] | None = None,
        strength: float = 6.0,
        token_type_ids: bool = False,
        **config: Any,
    ) -> Path:
        labels = LABELS_3 if id2label is None else id2label
        directory = tmp_path / name
        directory.mkdir()
        write_graph(directory / "model.onnx", len(labels), strength, token_type_ids)
        write_tokenizer(directory / "tokenizer.json")
        (directory / "config.json").write_text(json.dumps({"id2label": labels, **config}))
        return directory

    return make


@pytest.fixture
def scorer(build: Build) -> OnnxScorer:
    return OnnxScorer(build())


# --- behaviour ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text", "label"),
    [
        ("en", "The service is terrible", "negative"),
        ("en", "terrible", "negative"),
        ("de", "Der Zug ist schrecklich", "negative"),
        ("en", "The service is great", "positive"),
        ("de", "Der Zug ist toll", "positive"),
        ("en", "The train at noon", "neutral"),
        ("de", "der Zug", "neutral"),
    ],
)
def test_labels(scorer: OnnxScorer, lang: str, text: str, label: str) -> None:
    result = scorer.score(text, lang)
    assert isinstance(result, Sentiment)
    assert result.label == label
    assert -1.0 <= result.score <= 1.0
    assert 1 / 3 <= result.confidence <= 1.0
    assert result.reasons == ("model: tiny-sentiment",)


def test_scores_are_ordered(scorer: OnnxScorer) -> None:
    texts = [
        "terrible",
        "the service is terrible",
        "the service",
        "the service is great",
        "great",
    ]
    scores = [scorer.score(t, "en").score for t in texts]
    assert scores == sorted(scores)
    assert scores[0] < -0.5 < 0.5 < scores[-1]
    assert abs(scores[2]) < 0.05


def test_batch_equals_one_by_one(scorer: OnnxScorer) -> None:
    words = [*VOCAB[2:], "unknown"]
    items = [
        (" ".join(words[j % len(words)] for j in range(i, i + 1 + i % 7)), "en" if i % 2 else "de")
        for i in range(75)  # more than one batch, and mixed lengths padded together
    ]
    items += [("", "en"), ("   ", "de")]
    batched = scorer.score_many(items)
    single = [scorer.score(text, lang) for text, lang in items]
    assert [b.label for b in batched] == [s.label for s in single]
    for b, s in zip(batched, single, strict=True):
        assert b.score == pytest.approx(s.score, abs=1e-6)
        assert b.confidence == pytest.approx(s.confidence, abs=1e-6)
    assert scorer.score_many([]) == []


def test_empty_text_is_neutral(scorer: OnnxScorer) -> None:
    assert scorer.score("", "en").label == "neutral"


def test_truncates_to_max_length(build: Build) -> None:
    short = OnnxScorer(build("short", max_position_embeddings=4))
    text = "the train is at terrible terrible terrible terrible"
    assert short.max_length == 4
    assert short.score(text, "en").label == "neutral"  # "terrible" is past token 4
    assert OnnxScorer(build("long")).score(text, "en").label == "negative"


def test_feeds_token_type_ids_when_declared(build: Build) -> None:
    scorer = OnnxScorer(build(token_type_ids=True))
    assert scorer.score("great", "en").label == "positive"
    assert scorer.score("terrible", "en").label == "negative"


# --- labels ------------------------------------------------------------------------------------


def test_generic_labels_three_classes(build: Build) -> None:
    labels = {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    scorer = OnnxScorer(build(id2label=labels))
    assert scorer.labels == ("negative", "neutral", "positive")
    assert scorer.score("schrecklich", "de").label == "negative"


def test_two_class_model(build: Build) -> None:
    scorer = OnnxScorer(build(id2label={"0": "NEGATIVE", "1": "POSITIVE"}))
    assert scorer.score("toll", "de").label == "positive"
    bad = scorer.score("kaputt", "de")
    assert bad.label == "negative"
    assert bad.score == pytest.approx(-bad.confidence + (1 - bad.confidence))


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({"0": "LABEL_0", "1": "LABEL_1"}, ("negative", "positive")),
        ({"0": "Positive", "1": "Negative", "2": "Neutral"}, ("positive", "negative", "neutral")),
        ({"0": "neg", "1": "neu", "2": "pos"}, ("negative", "neutral", "positive")),
    ],
)
def test_map_labels(id2label: dict[str, str], expected: tuple[str, ...]) -> None:
    assert map_labels(id2label, "x") == expected


@pytest.mark.parametrize(
    "id2label",
    [
        {"0": "joy", "1": "anger", "2": "sadness"},
        {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2", "3": "LABEL_3"},
        {"0": "negative", "1": "negative", "2": "positive"},
        {"1": "negative", "2": "positive"},
    ],
)
def test_map_labels_refuses(id2label: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"^x: id2label"):
        map_labels(id2label, "x")


# --- version -----------------------------------------------------------------------------------


def test_version_is_stable_and_follows_the_weights(build: Build) -> None:
    first = OnnxScorer(build("a")).version
    assert first.startswith("onnx:")
    assert len(first) == len("onnx:") + 12
    assert OnnxScorer(build("b")).version == first  # same bytes, other directory
    assert OnnxScorer(build("c", strength=5.0)).version != first


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["model.onnx", "tokenizer.json", "config.json"])
def test_missing_file(build: Build, missing: str) -> None:
    directory = build()
    (directory / missing).unlink()
    with pytest.raises(ValueError, match=rf"^sentiment.model_path: {directory} has no {missing}"):
        OnnxScorer(directory)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^sentiment.model_path: .* is not a directory$"):
        OnnxScorer(tmp_path / "nowhere")


def test_bad_config(build: Build) -> None:
    directory = build()
    (directory / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"config.json has no id2label$"):
        OnnxScorer(directory)
    (directory / "config.json").write_text('{"id2label": {"0": "joy", "1": "anger"}}')
    with pytest.raises(ValueError, match=r"rename the labels in config.json$"):
        OnnxScorer(directory)


def test_missing_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("model.onnx", "tokenizer.json", "config.json"):
        (tmp_path / name).write_text("{}")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ValueError) as info:
        OnnxScorer(tmp_path)
    assert str(info.value) == MISSING_PACKAGES
    assert "pip install 'listener[onnx]'" in str(info.value)
    assert "\n" not in str(info.value)


# --- load_scorer -------------------------------------------------------------------------------


def test_load_scorer(build: Build) -> None:
    assert isinstance(load_scorer("builtin", None), Scorer)
    assert isinstance(load_scorer("onnx", build()), OnnxScorer)
    with pytest.raises(ValueError, match=r"^sentiment.model_path: backend 'onnx' needs"):
        load_scorer("onnx", None)
    with pytest.raises(ValueError, match=r"^sentiment.backend: unknown backend 'vader'"):
        load_scorer("vader", None)


def test_pipeline_scores_mentions_with_the_configured_model(
    build: Build, tmp_path: Path, httpserver: Any
) -> None:
    """[sentiment] backend = "onnx": mentions stored by a real poll carry the model's verdict."""
    import subprocess
    import sys

    from feeds import rss

    items = [
        {"title": "Velora lock is terrible", "link": "https://a.example/1", "guid": "1"},
        {"title": "Velora lock is great", "link": "https://a.example/2", "guid": "2"},
    ]
    httpserver.expect_request("/f").respond_with_data(rss(items), content_type="text/xml")
    model = build()
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n[log]\nlevel = "error"\n'
        f'[sentiment]\nbackend = "onnx"\nmodel_path = "{model}"\n'
        '[[brands]]\nname = "Velora"\n'
        f'[[sources]]\nname = "s"\nurl = "{httpserver.url_for("/f")}"\n',
        encoding="utf-8",
    )

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "listener", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("db", "upgrade")
    run("poll")
    rows = {
        r["title"]: r
        for r in map(json.loads, run("mentions", "--format", "jsonl").split("\n")[:-1])
    }
    assert rows["Velora lock is terrible"]["sentiment"] == "negative"
    assert rows["Velora lock is great"]["sentiment"] == "positive"

    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text().replace(str(model), str(tmp_path / "nope")))
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "poll", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "sentiment.model_path" in proc.stderr
    assert "Traceback" not in proc.stderr

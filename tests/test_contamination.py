import json
import random
import re

import pytest
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.eval.contamination import NgramIndex, contamination_report, overlap_spans, record_text, tokens
from rlvr.io import DataError, write_jsonl

WORDS = [f"w{i}" for i in range(500)]


def _text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _reference_matches(train_texts, item, n):
    """Plain set-of-tuples n-gram overlap: how many of the item's n-grams occur in the training texts."""
    seen = set()
    for t in train_texts:
        toks = re.findall(r"[a-z0-9]+", t.lower())
        seen.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    toks = re.findall(r"[a-z0-9]+", item.lower())
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return len(grams), sum(g in seen for g in grams)


def test_tokens_normalise_case_punctuation_and_space():
    assert tokens("Alice has  3 brothers,\nand_M sisters!") == [
        "alice",
        "has",
        "3",
        "brothers",
        "and",
        "m",
        "sisters",
    ]


def test_planted_overlap_is_found_with_its_spans():
    rng = random.Random(0)
    train = [_text(rng, 60) for _ in range(200)]
    source = train[17].split()
    chunk1 = source[5:25]  # 20 words copied
    chunk2 = source[40:54]  # 14 words copied
    planted = (
        "Q: "
        + " ".join(chunk1[:10]).upper()
        + ", "
        + " ".join(chunk1[10:])
        + "? and then "
        + " ".join(chunk2)
        + "."
    )
    near_miss = "zz " + " ".join(source[0:12]) + " zz"  # 12 shared words: no 13-gram
    index = NgramIndex(13)
    index.add_texts(train)
    n_ngrams, n_matched, spans = overlap_spans(planted, index)
    assert (n_ngrams, n_matched) == _reference_matches(train, planted, 13)
    assert n_matched == (20 - 13 + 1) + (14 - 13 + 1)
    assert len(spans) == 2
    assert tokens(spans[0]) == [w.lower() for w in chunk1]
    assert spans[0].startswith(chunk1[0].upper()) and spans[1] == " ".join(chunk2)
    assert overlap_spans(near_miss, index)[1] == 0


def test_matches_agree_with_reference_on_random_data():
    rng = random.Random(1)
    small = WORDS[:6]  # a tiny vocabulary makes many chance matches of short n-grams
    train = [" ".join(rng.choice(small) for _ in range(40)) for _ in range(30)]
    index = NgramIndex(4)
    index.add_texts(train)
    for _ in range(30):
        item = " ".join(rng.choice(small) for _ in range(rng.randint(1, 30)))
        n_ngrams, n_matched, _ = overlap_spans(item, index)
        assert (n_ngrams, n_matched) == _reference_matches(train, item, 4)


def test_ngrams_do_not_span_two_training_texts():
    index = NgramIndex(4)
    index.add_texts(["a b c", "d e f"])
    assert overlap_spans("a b c d e f", index)[1] == 0


def test_report_summary_threshold_and_fields(tmp_path):
    rng = random.Random(2)
    train = [{"question": _text(rng, 50)} for _ in range(100)]
    write_jsonl(tmp_path / "train.jsonl", train)
    copied = " ".join(train[3]["question"].split()[:20])
    partial = " ".join(train[4]["question"].split()[:13]) + " " + _text(random.Random(99), 40)
    evals = [
        {"id": "copy", "messages": [{"role": "user", "content": copied}]},
        {"id": "partial", "prompt": partial},
        {"id": "clean", "problem": _text(random.Random(5), 30).replace("w", "v")},
        {"id": "short", "text": "just a few words"},
    ]
    (tmp_path / "eval.json").write_text(json.dumps(evals))
    rep = contamination_report([tmp_path / "train.jsonl"], tmp_path / "eval.json")
    s = rep["summary"]
    assert (s["eval_items"], s["contaminated"], s["too_short"]) == (4, 2, 1)
    by_id = {it["id"]: it for it in rep["items"]}
    assert by_id["copy"]["share"] == 1.0 and by_id["copy"]["spans"] == [copied]
    assert by_id["partial"]["n_matched"] == 1 and by_id["clean"]["contaminated"] is False
    strict = contamination_report([tmp_path / "train.jsonl"], tmp_path / "eval.json", threshold=0.5)
    assert strict["summary"]["contaminated"] == 1
    with pytest.raises(DataError, match=r"train\.jsonl:1: no text field \(looked for 'body'\)"):
        contamination_report([tmp_path / "train.jsonl"], tmp_path / "eval.json", field="body")
    with pytest.raises(DataError, match=r"eval\.json: item 0: no text field"):
        contamination_report([tmp_path / "train.jsonl"], tmp_path / "eval.json", field="question")


def test_record_text_errors_name_the_line():
    with pytest.raises(DataError, match="f.jsonl:7: no text field"):
        record_text({"answer": "4"}, "f.jsonl:7")
    with pytest.raises(DataError, match="neither text nor"):
        record_text({"prompt": 5}, "f.jsonl:1")
    assert record_text({"prompt": [{"role": "user", "content": "hi"}], "text": "no"}, "x") == "hi"


def test_contamination_command(tmp_path):
    rng = random.Random(3)
    train = [{"text": _text(rng, 30)} for _ in range(50)]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "eval.jsonl", [{"text": train[0]["text"]}, {"text": "unrelated words only here"}])
    out = tmp_path / "c.json"
    args = ["contamination", "--train", str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl")]
    result = CliRunner().invoke(app, [*args, "--n", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 of 2 eval items contaminated" in result.output
    assert json.loads(out.read_text())["summary"]["n"] == 8
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    result = CliRunner().invoke(
        app, ["contamination", "--train", str(tmp_path / "bad.jsonl"), "--eval", str(tmp_path / "eval.jsonl")]
    )
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output


@pytest.mark.slow
def test_hundred_thousand_line_train_file(tmp_path):
    rng = random.Random(4)
    vocab = [f"t{i}" for i in range(20000)]
    lines = [{"prompt": " ".join(rng.choices(vocab, k=40))} for _ in range(100_000)]
    write_jsonl(tmp_path / "train.jsonl", lines)
    evals = [{"id": i, "prompt": lines[i * 997]["prompt"]} for i in range(50)]
    evals += [{"id": f"c{i}", "prompt": " ".join(rng.choices(vocab, k=40))} for i in range(50)]
    write_jsonl(tmp_path / "eval.jsonl", evals)
    rep = contamination_report([tmp_path / "train.jsonl"], tmp_path / "eval.jsonl")
    assert rep["summary"]["contaminated"] == 50
    assert rep["summary"]["train_texts"] == 100_000

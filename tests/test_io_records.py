import json

import pytest

from rlvr.io import DataError, atomic_write_json, read_jsonl
from rlvr.records import Sample, Verdict
from rlvr.verify import sample_item


def test_read_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": 1}\n\n{"id": 2\n')
    with pytest.raises(DataError, match=r"in\.jsonl:3: invalid JSON"):
        read_jsonl(p)


def test_read_jsonl_missing_field(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": 1, "answer": "2"}\n{"id": 2}\n')
    with pytest.raises(DataError, match=r"in\.jsonl:2: missing field\(s\) 'answer'"):
        read_jsonl(p, required=["id", "answer"])


def test_read_jsonl_non_object(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r":1: expected a JSON object"):
        read_jsonl(p)


def test_atomic_write_json_leaves_no_temp(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_verdict_rejects_unknown_status():
    with pytest.raises(ValueError):
        Verdict(reward=1.0, status="great")
    v = Verdict(0.0, "timeout", "too slow")
    assert v.is_failure and not v.correct
    assert Verdict.from_dict(v.to_dict()) == v


def test_sample_item_and_messages():
    s = Sample(id="a", prompt="2+2?", verifier="math", gold="4")
    assert sample_item(s, "4") == {"answer": "4", "completion": "4"}
    assert s.messages(system="sys")[0] == {"role": "system", "content": "sys"}
    c = Sample(id="b", prompt="x", verifier="code", gold={"tests": "assert f() == 1"})
    assert sample_item(c, "code")["tests"] == "assert f() == 1"


def test_torn_last_line_is_skipped_only_when_allowed(tmp_path):
    from rlvr.io import append_jsonl, iter_jsonl

    p = tmp_path / "rows.jsonl"
    append_jsonl(p, [{"a": 1}, {"a": 2}])
    with p.open("a") as fh:
        fh.write('{"a": 3, "b": tru')  # a writer killed mid-line
    assert [r["a"] for _, r in iter_jsonl(p, torn_tail_ok=True)] == [1, 2]
    with pytest.raises(DataError, match=r"rows\.jsonl:3: invalid JSON"):
        read_jsonl(p)
    q = tmp_path / "bad.jsonl"
    q.write_text('{"a": 1}\n{"a": \n{"a": 3}')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        list(iter_jsonl(q, torn_tail_ok=True))

import json

import pytest

from rlvr.data import load_task
from rlvr.data.loaders import detect_format, gsm8k_gold, last_boxed
from rlvr.io import DataError, write_jsonl


def jsonl(tmp_path, name, rows):
    path = tmp_path / name
    write_jsonl(path, rows)
    return path


def test_gsm8k_jsonl(tmp_path):
    path = jsonl(
        tmp_path,
        "gsm8k.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
            {"question": "A farm earns money.", "answer": "It earns 1,234,567 dollars.\n#### 1,234,567"},
        ],
    )
    samples = load_task(str(path))
    assert [s.gold for s in samples] == ["7", "1234567"]
    assert all(s.verifier == "math" for s in samples)
    assert samples[0].prompt.startswith("Tom has 3 apples") and "\\boxed{}" in samples[0].prompt
    assert samples[0].id == "gsm8k-0" and samples[0].meta["source_format"] == "gsm8k"
    assert load_task(str(path), n=1)[0].id == "gsm8k-0"
    assert load_task(str(path), instruction=None)[0].prompt == "Tom has 3 apples and buys 4. How many?"


def test_gsm8k_gold_strips_separators_only():
    assert gsm8k_gold("... #### 12,000") == "12000"
    assert gsm8k_gold("#### -3.5") == "-3.5"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("the answer is 4")


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"question": "q", "answer": "#### 1"})
    path.write_text(f"{good}\n\n{good}\n{{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:4: invalid JSON"):
        load_task(str(path))
    path.write_text(f"{good}\n" + json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: gsm8k record: .*####"):
        load_task(str(path))
    path.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: cannot tell the format"):
        load_task(str(path))
    with pytest.raises(DataError, match="no such file"):
        load_task(str(tmp_path / "missing.jsonl"))


def test_math_last_boxed_balanced(tmp_path):
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{a{b}c") is None
    assert last_boxed("no box") is None
    path = jsonl(
        tmp_path,
        "math.jsonl",
        [
            {
                "problem": "Halve 1.",
                "solution": r"So $\boxed{\dfrac{1}{2}}$.",
                "level": "Level 3",
                "type": "Algebra",
            },
            {"problem": "P2", "solution": r"\boxed{x"},
        ],
    )
    with pytest.raises(DataError, match=r"math\.jsonl:2: math record: .*boxed"):
        load_task(str(path))
    path.write_text(path.read_text().splitlines()[0] + "\n")
    (s,) = load_task(str(path))
    assert s.gold == r"\dfrac{1}{2}" and s.difficulty == 3.0 and s.meta["type"] == "Algebra"


def test_open_instruct_rows(tmp_path):
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    rows = [
        {"messages": msgs, "ground_truth": "4", "dataset": "gsm8k"},
        {"messages": msgs, "ground_truth": "4", "dataset": "MATH"},
        {
            "messages": [{"role": "user", "content": "Write in lowercase."}],
            "ground_truth": json.dumps(
                {"instruction_id": ["change_case:english_lowercase"], "kwargs": [None]}
            ),
            "dataset": "ifeval",
        },
        {
            "messages": msgs,
            "ground_truth": json.dumps(["assert f(1) == 2", "assert f(2) == 3"]),
            "dataset": "code",
        },
        {
            "messages": msgs,
            "ground_truth": [{"input": "1\n", "output": "2\n"}],
            "dataset": "code_stdio",
        },
    ]
    samples = load_task(str(jsonl(tmp_path, "oi.jsonl", rows)))
    assert [s.verifier for s in samples] == ["math", "math", "ifeval", "code", "code"]
    assert samples[0].gold == "4" and samples[0].prompt == msgs
    assert samples[2].gold == {
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{}],
        "prompt": "Write in lowercase.",
    }
    assert samples[3].gold == {"tests": "assert f(1) == 2\nassert f(2) == 3"}
    assert samples[4].gold == {"tests": [{"stdin": "1\n", "stdout": "2\n"}]}
    bad = jsonl(
        tmp_path, "oi_bad.jsonl", [rows[0], {"messages": msgs, "ground_truth": "4", "dataset": "chess"}]
    )
    with pytest.raises(
        DataError, match=r"oi_bad\.jsonl:2: open_instruct record: unknown open-instruct dataset"
    ):
        load_task(str(bad))


def test_ifeval_rows_drop_null_kwargs(tmp_path):
    rows = [
        {
            "key": 1000,
            "prompt": "Write 300+ words.",
            "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
            "kwargs": [{"num_words": 300, "relation": "at least", "num_sentences": None}, {}],
        }
    ]
    (s,) = load_task(str(jsonl(tmp_path, "ifeval.jsonl", rows)))
    assert s.id == "1000" and s.verifier == "ifeval"
    assert s.gold["kwargs"] == [{"num_words": 300, "relation": "at least"}, {}]
    assert s.gold["prompt"] == "Write 300+ words."
    rows[0]["kwargs"] = [{}]
    with pytest.raises(DataError, match=r"ifeval\.jsonl:1: .*2 dicts"):
        load_task(str(jsonl(tmp_path, "ifeval.jsonl", rows)))


def test_mbpp_parquet_with_hidden_tests(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "task_id": 11,
            "text": "Write a function to add one.",
            "test_list": ["assert add_one(1) == 2", "assert add_one(0) == 1"],
            "test_setup_code": "import math",
            "challenge_test_list": ["assert add_one(-1) == 0"],
        },
        {
            "task_id": 12,
            "text": "Bad row.",
            "test_list": [],
            "test_setup_code": "",
            "challenge_test_list": [],
        },
    ]
    path = tmp_path / "mbpp.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=r"mbpp\.parquet: row 1: mbpp record: .*test_list"):
        load_task(str(path))
    pq.write_table(pa.Table.from_pylist(rows[:1]), path)
    (s,) = load_task(str(path))
    assert s.id == "mbpp-11" and s.verifier == "code"
    assert s.gold["tests"] == "import math\nassert add_one(1) == 2\nassert add_one(0) == 1"
    assert s.gold["hidden_tests"] == "import math\nassert add_one(-1) == 0"
    assert "assert add_one(1) == 2" in s.prompt and "```python" in s.prompt


def test_humaneval_and_stdio(tmp_path):
    he = {
        "task_id": "HumanEval/0",
        "prompt": "def inc(x):\n    '''Add one.'''\n",
        "test": "def check(candidate):\n    assert candidate(1) == 2\n",
        "entry_point": "inc",
    }
    (s,) = load_task(str(jsonl(tmp_path, "he.jsonl", [he])))
    assert s.id == "HumanEval/0" and s.gold["entry_point"] == "inc"
    assert s.gold["tests"] == he["test"] and "def inc(x):" in s.prompt

    del he["entry_point"]
    write_jsonl(tmp_path / "he_bad.jsonl", [{**he, "entry_point": "inc"}, {**he, "task_id": "HumanEval/1"}])
    with pytest.raises(DataError, match=r"he_bad\.jsonl:2: humaneval record: missing field 'entry_point'"):
        load_task(str(tmp_path / "he_bad.jsonl"))

    apps = {
        "problem_id": 7,
        "question": "Read n, print n+1.",
        "input_output": json.dumps({"inputs": ["1\n", "5\n"], "outputs": ["2\n", "6\n"]}),
    }
    cf = {"id": "cf-1", "prompt": "Echo.", "tests": [{"stdin": "a", "stdout": "a"}]}
    s1, s2 = load_task(str(jsonl(tmp_path, "apps.jsonl", [apps, cf])))
    assert s1.gold == {"tests": [{"stdin": "1\n", "stdout": "2\n"}, {"stdin": "5\n", "stdout": "6\n"}]}
    assert s2.gold == {"tests": [{"stdin": "a", "stdout": "a"}]} and s2.id == "cf-1"
    apps["input_output"] = json.dumps({"inputs": [[1]], "outputs": [[2]], "fn_name": "f"})
    with pytest.raises(DataError, match=r"apps2\.jsonl:1: stdio record: call-based"):
        load_task(str(jsonl(tmp_path, "apps2.jsonl", [apps])))


def test_aiw_prompts_json(tmp_path):
    prompts = [
        {
            "id": 1,
            "prompt": "Alice has 2 brothers and 3 sisters. ... Before providing answer to this problem, think "
            'carefully and double check ... Provide then the final answer in following form: "### Answer: ".',
            "right_answer": "4",
            "description": "d",
        },
        {"id": 2, "prompt": "Alice has 1 brother ...", "right_answer": 5, "description": "d"},
    ]
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(prompts, indent=1))
    samples = load_task(str(path))
    assert [(s.id, s.gold, s.verifier) for s in samples] == [("aiw-1", "4", "math"), ("aiw-2", "5", "math")]
    assert [s.meta["prompt_type"] for s in samples] == ["THINKING", None]
    prompts.append({"id": 3, "prompt": "p", "description": "d", "right_answer": None})
    path.write_text(json.dumps(prompts))
    with pytest.raises(DataError, match=r"prompts\.json: row 2: aiw record: missing 'right_answer'"):
        load_task(str(path))


def test_rlvr_roundtrip_and_format_override(tmp_path):
    samples = load_task("addition", n=3)
    path = jsonl(tmp_path, "saved.jsonl", [s.to_dict() for s in samples])
    assert load_task(str(path)) == samples
    write_jsonl(path, [s.to_dict() for s in samples] + [samples[1].to_dict()])
    with pytest.raises(
        DataError, match=r"saved\.jsonl:4: duplicate sample id 'add-\d+-\d+' \(first at .*saved\.jsonl:2\)"
    ):
        load_task(str(path))
    with pytest.raises(DataError, match="unknown format"):
        load_task(str(path), format="nope")
    assert detect_format({"question": "q", "answer": "a"}) == "gsm8k"


def test_hf_local_folder_and_saved_dataset(tmp_path):
    import datasets

    folder = tmp_path / "gsm"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(4)])
    samples = load_task(f"hf:{folder}", split="train", n=2, shuffle=True, seed=1)
    assert len(samples) == 2 and {s.gold for s in samples} <= {"0", "1", "2", "3"}
    assert samples[0].meta["source"].startswith("hf:")

    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_list([{"problem": "p", "solution": r"\boxed{9}"}])}
    ).save_to_disk(str(saved))
    (s,) = load_task(f"hf:{saved}", split="test")
    assert s.gold == "9"
    datasets.Dataset.from_list([{"problem": "p", "solution": "none"}]).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match=r"hf:.*row 0: math record"):
        load_task(f"hf:{tmp_path / 'bad'}")


def test_hf_hub_ids_go_to_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return datasets.Dataset.from_list([{"question": "q", "answer": "#### 3"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (s,) = load_task("hf:openai/gsm8k", split="test", name="main")
    assert calls == [("openai/gsm8k", {"split": "test", "name": "main"})]
    assert s.gold == "3" and s.id == "gsm8k-0" and s.meta["source"] == "hf:openai/gsm8k[test]"

    def offline(path, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"hf:org/none \[train\]: cannot load: offline"):
        load_task("hf:org/none")

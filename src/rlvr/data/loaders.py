"""Load local JSONL/JSON/Parquet files and Hugging Face datasets in the formats people already have.

Each record becomes one ``Sample`` carrying the verifier it needs. Formats (auto-detected from the
fields of the first record, or chosen with ``format=``), with the verifier they map to:

- ``rlvr``: ``Sample.to_dict()`` rows (``id``, ``prompt``, ``verifier``, ``gold``); verifier as given.
- ``open_instruct``: ``messages``, ``ground_truth`` (maybe a JSON string), ``dataset`` naming the
  verifier (``gsm8k``/``MATH``/``math`` -> math, ``ifeval`` -> ifeval, ``code``/``code_stdio`` -> code).
- ``gsm8k``: ``question``, ``answer`` ending in ``#### 72`` -> math.
- ``math``: ``problem``, ``solution`` with a final ``\\boxed{...}`` -> math.
- ``ifeval``: ``prompt``, ``instruction_id_list``, ``kwargs`` -> ifeval.
- ``mbpp``: ``text``/``prompt``, ``test_list`` (+ ``test_setup_code``; ``challenge_test_list`` as hidden
  tests) -> code.
- ``humaneval``: ``prompt``, ``test``, ``entry_point`` -> code.
- ``stdio``: ``question``/``prompt``/``problem``, and ``input_output`` or a ``tests`` list -> code.
- ``aiw``: the AIW benchmark's ``prompts.json`` (``id``, ``prompt``, ``right_answer``, ``description``)
  -> math.

A malformed record raises ``rlvr.io.DataError`` naming the file and the line (JSONL) or row (JSON
arrays, Parquet, Hugging Face datasets).
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rlvr.io import DataError, iter_jsonl
from rlvr.records import Sample

BOXED_INSTRUCTION = "Put your final answer within \\boxed{}."
CODE_INSTRUCTION = "Write your solution in Python inside a ```python code block."
STDIO_INSTRUCTION = (
    "Write a Python program that reads the input from standard input and prints the answer to standard "
    "output. Put the program inside a ```python code block."
)


class RecordError(ValueError):
    """A record is malformed; the caller adds the location (file:line or row)."""


# ---------------------------------------------------------------------------------------------------
# Reading raw records with their location


def iter_file_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` for each record of a .jsonl, .json or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _iter_parquet(path)
    elif suffix == ".json":
        yield from _iter_json(path)
    else:
        for lineno, rec in iter_jsonl(path):
            yield f"{path}:{lineno}", rec


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several error types for a corrupt file
        raise DataError(f"{path}: cannot read Parquet: {e}") from e
    for i, rec in enumerate(rows):
        yield f"{path}: row {i}", rec


def _iter_json(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A JSON array of objects; a file of one object per line named .json is read as JSONL."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level values: JSON lines
            for lineno, rec in iter_jsonl(path):
                yield f"{path}:{lineno}", rec
            return
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: row {i}: expected a JSON object, got {type(rec).__name__}")
        yield f"{path}: row {i}", rec


# ---------------------------------------------------------------------------------------------------
# Format detection and conversion


def detect_format(rec: dict[str, Any]) -> str | None:
    """The format name a record's fields match, or None."""
    keys = set(rec)
    if {"id", "prompt", "verifier", "gold"} <= keys:
        return "rlvr"
    if {"messages", "ground_truth"} <= keys:
        return "open_instruct"
    if "instruction_id_list" in keys:
        return "ifeval"
    if {"test", "entry_point"} <= keys:
        return "humaneval"
    if "test_list" in keys:
        return "mbpp"
    if "input_output" in keys or ("tests" in keys and keys & {"question", "prompt", "problem"}):
        return "stdio"
    if "right_answer" in keys:
        return "aiw"
    if {"problem", "solution"} <= keys:
        return "math"
    if {"question", "answer"} <= keys:
        return "gsm8k"
    return None


def _field(rec: dict[str, Any], *names: str, kind: type | tuple[type, ...] = str) -> Any:
    """The first present field among ``names``, checked for type."""
    for name in names:
        if name in rec and rec[name] is not None:
            value = rec[name]
            if not isinstance(value, kind):
                want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise RecordError(f"field {name!r} should be {want}, got {type(value).__name__}")
            return value
    raise RecordError(f"missing field {' or '.join(map(repr, names))}")


def _record_id(rec: dict[str, Any], default: str) -> str:
    for key in ("id", "task_id", "problem_id", "key", "uid"):
        if rec.get(key) is not None:
            return str(rec[key])
    return default


def _with_instruction(text: str, instruction: str | None) -> str:
    return f"{text.rstrip()}\n\n{instruction}" if instruction else text


def _parse_jsonish(value: Any) -> Any:
    """A value that may be a JSON (or Python literal) string; other values are returned as they are."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    if not s or s[0] not in '[{"':
        return value
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return value


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, or None."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def gsm8k_gold(answer: str) -> str:
    """The number after ``####`` with thousands separators removed."""
    if "####" not in answer:
        raise RecordError("GSM8K answer has no '#### <number>' line")
    gold = answer.rsplit("####", 1)[1].strip()
    gold = re.sub(r"(?<=\d),(?=\d{3}\b)", "", gold)
    if not gold:
        raise RecordError("GSM8K answer is empty after '####'")
    return gold


def _from_rlvr(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    prompt = _field(rec, "prompt", kind=(str, list))
    _check_messages(prompt)
    return Sample.from_dict({**rec, "id": str(rec["id"]), "verifier": _field(rec, "verifier")})


def _check_messages(prompt: Any) -> None:
    if isinstance(prompt, list):
        for m in prompt:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
                raise RecordError("chat messages must be objects with 'role' and 'content'")


# open-instruct's `dataset` names -> rlvr verifiers
OPEN_INSTRUCT_MATH = {"gsm8k", "math", "strict_math", "math_verify", "polaris", "deepscaler", "dapo", "aime"}
OPEN_INSTRUCT_CODE = {"code", "code_stdio", "code_verifiable", "apps", "mbpp", "humaneval", "livecodebench"}


def open_instruct_verifier(name: str) -> str:
    key = name.strip().lower()
    if key in OPEN_INSTRUCT_MATH or key.startswith(("math", "gsm")):
        return "math"
    if key.startswith("ifeval") or key in {"if", "ifeval_old"}:
        return "ifeval"
    if key in OPEN_INSTRUCT_CODE or key.startswith("code"):
        return "code"
    raise RecordError(f"unknown open-instruct dataset {name!r}; expected a math, ifeval or code name")


def _from_open_instruct(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    messages = _field(rec, "messages", kind=list)
    _check_messages(messages)
    dataset = rec.get("dataset")
    if isinstance(dataset, list) and len(dataset) == 1:
        dataset = dataset[0]
    if not isinstance(dataset, str):
        raise RecordError("field 'dataset' should name the verifier (e.g. 'gsm8k', 'ifeval', 'code')")
    verifier = open_instruct_verifier(dataset)
    truth = _parse_jsonish(rec["ground_truth"])
    if verifier == "math":
        if isinstance(truth, list) and len(truth) == 1:
            truth = truth[0]
        if isinstance(truth, (int, float)):
            truth = str(truth)
        if not isinstance(truth, str) or not truth.strip():
            raise RecordError(f"math ground_truth should be an answer string, got {truth!r:.80}")
        gold: Any = truth.strip()
    elif verifier == "ifeval":
        gold = _ifeval_gold_from_open_instruct(truth, messages)
    else:
        gold = _code_gold(truth)
    return Sample(
        id=_record_id(rec, default_id),
        prompt=[{"role": m["role"], "content": m["content"]} for m in messages],
        verifier=verifier,
        gold=gold,
        meta={"source_format": "open_instruct", "dataset": dataset},
    )


def _ifeval_gold_from_open_instruct(truth: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(truth, list) and len(truth) == 1:
        truth = _parse_jsonish(truth[0])
    if not isinstance(truth, dict):
        raise RecordError(f"ifeval ground_truth should be a dict of instructions, got {truth!r:.80}")
    ids = truth.get("instruction_id", truth.get("instruction_id_list"))
    if ids is None:
        raise RecordError(
            "ifeval ground_truth has no 'instruction_id' list (the 'func_name' form is not supported)"
        )
    if isinstance(ids, str):
        ids = [ids]
    kwargs = truth.get("kwargs") or [{} for _ in ids]
    if isinstance(kwargs, dict):
        kwargs = [kwargs]
    prompt = next((m["content"] for m in messages if m["role"] == "user"), "")
    return _ifeval_gold(ids, kwargs, prompt)


def _ifeval_gold(ids: Any, kwargs: Any, prompt: str) -> dict[str, Any]:
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RecordError("'instruction_id_list' should be a list of strings")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise RecordError(f"'kwargs' should be a list of {len(ids)} dicts, one per instruction")
    clean = []
    for k in kwargs:
        if k is None:
            k = {}
        if not isinstance(k, dict):
            raise RecordError(f"instruction kwargs should be dicts, got {type(k).__name__}")
        clean.append({key: v for key, v in k.items() if v is not None})  # HF rows pad absent keys with null
    return {"instruction_id_list": list(ids), "kwargs": clean, "prompt": prompt}


def _from_gsm8k(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    question = _field(rec, "question")
    return Sample(
        id=_record_id(rec, default_id),
        prompt=_with_instruction(question, instruction),
        verifier="math",
        gold=gsm8k_gold(_field(rec, "answer")),
        meta={"source_format": "gsm8k"},
    )


def _from_math(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    solution = _field(rec, "solution")
    gold = rec.get("answer") if isinstance(rec.get("answer"), str) and rec["answer"].strip() else None
    gold = gold or last_boxed(solution)
    if not gold:
        raise RecordError("MATH solution has no \\boxed{...} answer (or its braces are unbalanced)")
    meta = {"source_format": "math"}
    for key in ("level", "type", "subject"):
        if key in rec:
            meta[key] = rec[key]
    level = re.search(r"\d+", str(rec.get("level", "")))
    return Sample(
        id=_record_id(rec, default_id),
        prompt=_with_instruction(_field(rec, "problem"), instruction),
        verifier="math",
        gold=gold.strip(),
        difficulty=float(level.group()) if level else None,
        meta=meta,
    )


def _from_ifeval(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    prompt = _field(rec, "prompt")
    return Sample(
        id=_record_id(rec, default_id),
        prompt=prompt,
        verifier="ifeval",
        gold=_ifeval_gold(rec.get("instruction_id_list"), rec.get("kwargs"), prompt),
        meta={"source_format": "ifeval"},
    )


def _code_gold(tests: Any, hidden: Any = None, entry_point: str | None = None) -> dict[str, Any]:
    """The code verifier's gold: assert code (a string) or a list of ``{"stdin", "stdout"}`` cases."""
    gold: dict[str, Any] = {"tests": _normalise_tests(tests)}
    if hidden:
        gold["hidden_tests"] = _normalise_tests(hidden)
    if entry_point:
        gold["entry_point"] = entry_point
    return gold


def _normalise_tests(tests: Any) -> str | list[dict[str, str]]:
    tests = _parse_jsonish(tests)
    if isinstance(tests, str):
        if not tests.strip():
            raise RecordError("empty tests")
        return tests
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
        if tests.get("fn_name"):
            raise RecordError("call-based input_output (with 'fn_name') is not supported; use assert tests")
        ins, outs = tests["inputs"], tests["outputs"]
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
            raise RecordError("input_output needs 'inputs' and 'outputs' lists of equal length")
        tests = [{"stdin": i, "stdout": o} for i, o in zip(ins, outs, strict=True)]
    if isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
        return "\n".join(tests)
    if isinstance(tests, list) and tests and all(isinstance(t, dict) for t in tests):
        cases = []
        for t in tests:
            stdin, stdout = t.get("stdin", t.get("input")), t.get("stdout", t.get("output"))
            if stdin is None or stdout is None:
                raise RecordError("each stdin/stdout test needs 'stdin'/'input' and 'stdout'/'output'")
            cases.append({"stdin": _as_text(stdin), "stdout": _as_text(stdout)})
        return cases
    raise RecordError(f"tests should be assert code or a list of stdin/stdout cases, got {tests!r:.80}")


def _as_text(v: Any) -> str:
    if isinstance(v, list):  # some datasets store the lines of the stream
        return "\n".join(map(str, v))
    return str(v)


def _from_mbpp(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    text = _field(rec, "text", "prompt")
    test_list = _field(rec, "test_list", kind=list)
    if not test_list or not all(isinstance(t, str) for t in test_list):
        raise RecordError("'test_list' should be a non-empty list of assert strings")
    setup = rec.get("test_setup_code") or ""
    imports = rec.get("test_imports") or []  # sanitized MBPP
    header = "\n".join([*imports, setup]).strip()
    tests = "\n".join(filter(None, [header, *test_list]))
    challenge = rec.get("challenge_test_list") or []
    hidden = "\n".join(filter(None, [header, *challenge])) if challenge else None
    prompt = f"{text.strip()}\nYour code should pass these tests:\n\n" + "\n".join(test_list)
    return Sample(
        id=f"mbpp-{rec['task_id']}" if "task_id" in rec else _record_id(rec, default_id),
        prompt=_with_instruction(prompt, CODE_INSTRUCTION),
        verifier="code",
        gold=_code_gold(tests, hidden),
        meta={"source_format": "mbpp"},
    )


def _from_humaneval(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    code = _field(rec, "prompt")
    entry_point = _field(rec, "entry_point")
    tests = _field(rec, "test")  # defines check(candidate); the code verifier calls check(entry_point)
    prompt = (
        "Complete the following Python function. Reply with the whole function (signature included).\n\n"
        f"```python\n{code.rstrip()}\n```"
    )
    return Sample(
        id=_record_id(rec, default_id),
        prompt=_with_instruction(prompt, CODE_INSTRUCTION),
        verifier="code",
        gold=_code_gold(tests, entry_point=entry_point),
        meta={"source_format": "humaneval", "code_prompt": code},
    )


def _from_stdio(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    text = _field(rec, "question", "prompt", "problem", "description")
    tests = rec["input_output"] if rec.get("input_output") is not None else rec.get("tests")
    hidden = rec.get("hidden_tests") or rec.get("private_tests")
    return Sample(
        id=_record_id(rec, default_id),
        prompt=_with_instruction(text, STDIO_INSTRUCTION),
        verifier="code",
        gold=_code_gold(tests, hidden),
        meta={"source_format": "stdio"},
    )


def aiw_prompt_type(prompt: str) -> str | None:
    """The AIW paper's prompt type recognised from its instruction text (None when it is another one)."""
    text = prompt.lower()
    if "do not output any text except" in text:
        return "RESTRICTED"
    if "think carefully" in text:
        return "THINKING"
    if "solve this problem and provide the final answer" in text:
        return "STANDARD"
    return None


def _from_aiw(rec: dict[str, Any], default_id: str, instruction: str | None) -> Sample:
    answer = rec.get("right_answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise RecordError("missing 'right_answer'")
    prompt = _field(rec, "prompt")
    return Sample(
        id=f"aiw-{_record_id(rec, default_id)}",
        prompt=prompt,
        verifier="math",
        gold=str(answer).strip(),
        meta={
            "source_format": "aiw",
            "description": rec.get("description") or "",
            "prompt_type": aiw_prompt_type(prompt),
        },
    )


CONVERTERS: dict[str, Callable[[dict[str, Any], str, str | None], Sample]] = {
    "rlvr": _from_rlvr,
    "open_instruct": _from_open_instruct,
    "gsm8k": _from_gsm8k,
    "math": _from_math,
    "ifeval": _from_ifeval,
    "mbpp": _from_mbpp,
    "humaneval": _from_humaneval,
    "stdio": _from_stdio,
    "aiw": _from_aiw,
}
FORMATS = tuple(CONVERTERS)


def records_to_samples(
    records: Iterable[tuple[str, dict[str, Any]]],
    *,
    source: str,
    format: str | None = None,
    instruction: str | None = BOXED_INSTRUCTION,
    id_prefix: str | None = None,
) -> list[Sample]:
    """Convert located records; the format is detected from the first record unless given.

    ``instruction`` is appended to plain math prompts (GSM8K, MATH) so the answer lands in ``\\boxed{}``;
    pass None to keep the prompts as they are.
    """
    if format is not None and format not in CONVERTERS:
        raise DataError(f"{source}: unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    stem = id_prefix or Path(source).stem or "row"
    samples = []
    seen: dict[str, str] = {}  # sample id -> location of its record
    for index, (location, rec) in enumerate(records):
        if format is None:
            format = detect_format(rec)
            if format is None:
                raise DataError(
                    f"{location}: cannot tell the format from the fields {sorted(rec)}; "
                    f"pass format= (one of {', '.join(FORMATS)})"
                )
        try:
            sample = CONVERTERS[format](rec, f"{stem}-{index}", instruction)
        except RecordError as e:
            raise DataError(f"{location}: {format} record: {e}") from None
        except KeyError as e:
            raise DataError(f"{location}: {format} record: missing field {e}") from None
        if sample.id in seen:
            raise DataError(f"{location}: duplicate sample id {sample.id!r} (first at {seen[sample.id]})")
        seen[sample.id] = location
        if format != "rlvr":  # rlvr rows round-trip unchanged
            sample.meta.setdefault("source", source)
        samples.append(sample)
    return samples


def _take(samples: list[Sample], n: int | None, seed: int, shuffle: bool) -> list[Sample]:
    if shuffle:
        samples = list(samples)
        random.Random(seed).shuffle(samples)
    return samples if n is None else samples[:n]


def load_file(
    path: str | Path,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    format: str | None = None,
    instruction: str | None = BOXED_INSTRUCTION,
    shuffle: bool = False,
) -> list[Sample]:
    """Samples from a local .jsonl/.json/.parquet file: the first ``n`` (after a seeded shuffle if asked).

    A file holds one split; ``split`` is not used for local files.
    """
    samples = records_to_samples(
        iter_file_records(path), source=str(path), format=format, instruction=instruction
    )
    return _take(samples, n, seed, shuffle)


def load_hf(
    path: str,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    format: str | None = None,
    instruction: str | None = BOXED_INSTRUCTION,
    shuffle: bool = False,
    **load_kwargs: Any,
) -> list[Sample]:
    """Samples from ``datasets.load_dataset(path, split=split, **load_kwargs)``.

    ``path`` is a hub id (``openai/gsm8k``; its config goes in ``load_kwargs`` as ``name="main"``), a
    local folder of data files, or a folder written by ``Dataset.save_to_disk``.
    """
    import datasets

    folder = Path(path)
    try:
        if folder.is_dir() and ((folder / "state.json").exists() or (folder / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(folder))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        else:
            ds = datasets.load_dataset(path, split=split, **load_kwargs)
    except (FileNotFoundError, ValueError, ConnectionError, KeyError) as e:
        raise DataError(f"hf:{path} [{split}]: cannot load: {e}") from e
    source = f"hf:{path}[{split}]"
    rows = ((f"{source}: row {i}", dict(rec)) for i, rec in enumerate(ds))
    samples = records_to_samples(
        rows, source=source, format=format, instruction=instruction, id_prefix=folder.name or "hf"
    )
    return _take(samples, n, seed, shuffle)

"""reasoning-gym adapter: procedural tasks by seed and config, their curricula, and a strict verifier.

``load_task("gym:chain_sum", n=64, seed=0, difficulty=2, min_terms=3)`` builds the reasoning-gym dataset
``chain_sum`` and turns its entries into Samples graded by the ``reasoning_gym`` verifier.

- ``difficulty=<level>`` sets every attribute of the dataset's curriculum to that level (clamped per
  attribute to its highest level); ``curriculum={"num_terms": 3}`` sets single attributes. Other keyword
  options are fields of the dataset's config and override what the curriculum chose.
- Splits are disjoint by question: a hash of (dataset, question) puts every question in ``train`` or
  ``test`` (20 %) for good, and a split keeps only its own questions from the seeded stream of entries.
  No seed or config makes a test question show up in a train draw.

The verifier is **strict**. reasoning-gym's own ``score_answer`` gives partial credit (for example
``len(gold) / len(answer)`` when the gold is a substring of the answer), which rewards listing many
candidate answers. Here the final answer is extracted first (the last ``<answer>...</answer>``, else the
last ``\\boxed{...}``, else the last non-empty line); it is correct only if it equals the gold after
whitespace normalisation or if the dataset's scorer gives it full credit (1.0). Any lower score counts
as 0 (the score is kept in the reason); a scorer that raises gives an ``error`` verdict. A scorer that
also gives full credit to a nonsense canary answer cannot tell answers apart (``game_of_life_halting``
in reasoning-gym 0.1.19 compares ``bool(answer) == bool(gold)`` on strings); there only an exact match
counts.

The verifier rebuilds the entry from what the Sample stores (dataset name, config options, curriculum
levels, seed, size, index), since entries may hold objects that JSON cannot carry.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
import re
import time
from typing import Any

from rlvr.data.loaders import last_boxed
from rlvr.records import Sample, Verdict
from rlvr.verify.pool import SharedPool, WorkerPool

ANSWER_INSTRUCTION = "Give your final answer inside <answer></answer> tags."
FULL_CREDIT = 1.0 - 1e-9
TEST_SHARE = 0.2
# A deliberately wrong answer: a scorer that gives it full credit cannot tell answers apart (e.g. one that
# compares bool("False") == bool("True")), so only an exact match counts for that entry.
CANARY = "rlvr canary: this is not an answer"


def _factory():
    from reasoning_gym import factory

    return factory


def gym_datasets() -> list[str]:
    """Names of the reasoning-gym datasets."""
    return sorted(_factory().DATASETS)


def gym_curriculum(name: str) -> dict[str, dict[str, Any]]:
    """The curriculum attributes of a dataset: ``{attribute: {"levels": [...], "description": ...}}``."""
    factory = _factory()
    _check_name(name)
    if not factory.has_curriculum(name):
        return {}
    return {
        attr_name: {"levels": list(attr.levels), "description": attr.description}
        for attr_name, attr in factory.create_curriculum(name).attributes.items()
    }


def _check_name(name: str) -> None:
    if name not in _factory().DATASETS:
        raise KeyError(f"unknown reasoning-gym dataset {name!r}; available: {', '.join(gym_datasets())}")


def split_of(name: str, question: str) -> str:
    """``"train"`` or ``"test"``: a fixed function of the dataset and the question text."""
    h = int.from_bytes(hashlib.sha256(f"gym:{name}:{question}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_SHARE else "train"


def build_dataset(
    name: str,
    config: dict[str, Any],
    seed: int,
    size: int,
    difficulty: int | None = None,
    curriculum: dict[str, int] | None = None,
):
    """The reasoning-gym dataset for these options (the same options always give the same entries)."""
    factory = _factory()
    _check_name(name)
    if difficulty is None and not curriculum:
        return factory.create_dataset(name, **config, seed=seed, size=size)
    if not factory.has_curriculum(name):
        raise ValueError(f"reasoning-gym dataset {name!r} has no curriculum; drop difficulty/curriculum")
    cur = factory.create_curriculum(name)
    if difficulty is not None:
        top = max((len(a.levels) - 1 for a in cur.attributes.values()), default=0)
        if not 0 <= difficulty <= top:
            raise ValueError(f"{name}: difficulty must be a level in 0..{top}, got {difficulty}")
        cur.set_global_level(difficulty)
    for attr_name, level in (curriculum or {}).items():
        if attr_name not in cur.attributes:
            raise KeyError(f"{name}: no curriculum attribute {attr_name!r}; has {', '.join(cur.attributes)}")
        cur.set_attr_level(attr_name, level)
    cfg = dataclasses.replace(cur.generate_configuration({"seed": seed, "size": size}), **config)
    if hasattr(cfg, "validate"):
        cfg.validate()
    dataset_cls, _ = factory.DATASETS[name]
    return dataset_cls(config=cfg)


def load_gym(
    name: str,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    difficulty: int | None = None,
    curriculum: dict[str, int] | None = None,
    instruction: str | None = ANSWER_INSTRUCTION,
    **config: Any,
) -> list[Sample]:
    """``n`` entries (default 100) of reasoning-gym dataset ``name`` as Samples for the strict verifier."""
    size = 100 if n is None else n
    if size < 1:
        raise ValueError(f"gym:{name}: n must be >= 1, got {size}")
    try:
        json.dumps(config)
    except TypeError as e:
        raise ValueError(f"gym:{name}: config options must be JSON values: {e}") from None
    if split not in ("train", "test"):
        raise ValueError(f"gym:{name}: unknown split {split!r}; expected 'train' or 'test'")
    # The stream of entries a split filters; long enough for the 20 % test share with a wide margin.
    stream = 10 * size + 100
    try:
        ds = build_dataset(name, config, seed, stream, difficulty, curriculum)
    except TypeError as e:  # an option the dataset's config does not have
        raise ValueError(f"gym:{name}: bad config option: {e}") from None
    levels = [difficulty] if difficulty is not None else []
    levels += list((curriculum or {}).values())
    samples = []
    for i in range(stream):
        if len(samples) == size:
            break
        entry = ds[i]
        question = str(entry["question"])
        if split_of(name, question) != split:
            continue
        answer = entry.get("answer")
        gold = {
            "dataset": name,
            "config": config,
            "seed": seed,
            "size": stream,
            "difficulty": difficulty,
            "curriculum": curriculum or {},
            "index": i,
            "question": question,
            "answer": None if answer is None else str(answer),
        }
        samples.append(
            Sample(
                id=f"gym-{name}-s{seed}-{i}",
                prompt=f"{question.rstrip()}\n\n{instruction}" if instruction else question,
                verifier="reasoning_gym",
                gold=gold,
                family_id=f"gym:{name}",
                variation_id=str(i),
                difficulty=float(max(levels)) if levels else None,
                meta={"task": f"gym:{name}", "split": split, "category": ds.category},
            )
        )
    if len(samples) < size:
        raise ValueError(
            f"gym:{name}: found only {len(samples)} {split} questions in {stream} entries, asked for {size} "
            "(is the problem space that small?)"
        )
    return samples


# ---------------------------------------------------------------------------------------------------
# Strict verifier

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def extract_final_answer(completion: str) -> str | None:
    """The last ``<answer>`` block, else the last ``\\boxed{}``, else the last non-empty line."""
    tags = _ANSWER_TAG.findall(completion)
    if tags:
        return tags[-1].strip()
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed
    lines = [line.strip() for line in completion.splitlines() if line.strip()]
    return lines[-1] if lines else None


def normalise(answer: str) -> str:
    """Whitespace collapsed, surrounding ``$`` and a trailing full stop dropped."""
    answer = " ".join(answer.split()).strip("$ ")
    return answer[:-1].rstrip() if answer.endswith(".") else answer


@functools.lru_cache(maxsize=64)
def _cached_dataset(key: str):
    spec = json.loads(key)
    return build_dataset(
        spec["dataset"], spec["config"], spec["seed"], spec["size"], spec["difficulty"], spec["curriculum"]
    )


def _dataset_key(item: dict[str, Any]) -> str:
    fields = ("dataset", "config", "seed", "size", "difficulty", "curriculum")
    return json.dumps({f: item.get(f) for f in fields}, sort_keys=True)


def grade(item: dict[str, Any]) -> Verdict:
    """Grade one verifier item (the Sample's gold fields plus ``completion``)."""
    t0 = time.perf_counter()

    def verdict(reward: float, status: str, reason: str, extracted: str | None = None) -> Verdict:
        return Verdict(reward, status, reason, extracted, (time.perf_counter() - t0) * 1000)

    completion = item.get("completion")
    if not isinstance(completion, str):
        return verdict(0.0, "error", "item has no 'completion' string")
    extracted = extract_final_answer(completion)
    if extracted is None:
        return verdict(0.0, "unparsable", "empty completion")
    name = item.get("dataset", "?")
    try:
        ds = _cached_dataset(_dataset_key(item))
        entry = ds[int(item["index"])]
    except Exception as e:
        return verdict(0.0, "error", f"cannot rebuild the {name} entry: {type(e).__name__}: {e}", extracted)
    if "question" in item and str(entry["question"]) != item["question"]:
        return verdict(
            0.0, "error", f"rebuilt {name} entry differs from the sample (reasoning-gym version?)", extracted
        )
    gold = entry.get("answer")
    if gold is not None and normalise(extracted) == normalise(str(gold)):
        return verdict(1.0, "correct", "exact match", extracted)
    try:
        score = float(ds.score_answer(extracted, entry))
    except Exception as e:
        return verdict(0.0, "error", f"{name} scorer raised {type(e).__name__}: {e}", extracted)
    if score >= FULL_CREDIT:
        try:
            canary = float(ds.score_answer(CANARY, entry))
        except Exception:
            canary = 0.0
        if canary >= FULL_CREDIT:
            return verdict(
                0.0, "incorrect", f"the {name} scorer accepts any answer; no exact match", extracted
            )
        return verdict(1.0, "correct", f"{name} scorer gave full credit", extracted)
    if score > 0:
        return verdict(
            0.0, "incorrect", f"partial credit {score:.4g} from the {name} scorer counts as 0", extracted
        )
    return verdict(0.0, "incorrect", "wrong answer", extracted)


_shared = SharedPool()


def _get_pool(workers: int, timeout: float) -> WorkerPool:
    """One pool per process, kept between calls (a trainer grades every step; workers keep their
    imported reasoning-gym and built datasets); rebuilt when the settings change."""
    return _shared.get(
        (workers, timeout), lambda: WorkerPool(grade, workers=workers, timeout=timeout, memory_mb=2048)
    )


def verify_batch(
    items: list[dict[str, Any]], *, workers: int = 2, timeout: float = 10.0, **options: Any
) -> list[Verdict]:
    """Grade items in worker processes with a wall-clock limit each; ``workers=0`` grades in-process.

    Options meant for other verifiers are ignored.
    """
    if workers == 0 or not items:
        return [grade(item) for item in items]
    for key in {_dataset_key(item) for item in items}:  # built here, inherited by workers forked later
        try:
            _cached_dataset(key)
        except Exception:
            pass  # the worker reports it as an error verdict
    with _shared.lock:
        return pool_verdicts(_get_pool(workers, float(timeout)).map(items))


def pool_verdicts(results: list[Any]) -> list[Verdict]:
    """Pool results as Verdicts: a TimeoutMarker becomes ``timeout``, an ErrorMarker ``error``."""
    from rlvr.verify.pool import ErrorMarker, TimeoutMarker

    out = []
    for r in results:
        if isinstance(r, TimeoutMarker):
            out.append(Verdict(0.0, "timeout", f"scoring took over {r.timeout:g}s", None, r.timeout * 1000))
        elif isinstance(r, ErrorMarker):
            out.append(Verdict(0.0, "error", r.message))
        else:
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------------------
# Audit: how much reasoning-gym's own scorer pays for a sprayed answer


def spray_audit(names: list[str] | None = None, n: int = 20, seed: int = 0) -> list[dict[str, Any]]:
    """Per dataset: mean reward of a sprayed answer under reasoning-gym's scorer and under the strict one.

    The spray for an entry lists its gold answer among the gold answers of three other entries
    (``<answer>g1 g2 gold g3</answer>``): a policy that cannot solve the task but guesses widely.
    Datasets whose entries have no single gold answer, or that fail to build, are skipped.
    """
    rows = []
    for name in names or gym_datasets():
        try:
            samples = load_gym(name, n=n, seed=seed)
            ds = _cached_dataset(_dataset_key(samples[0].gold))
        except Exception:
            continue
        golds = [s.gold["answer"] for s in samples]
        if any(g is None or "\n" in g for g in golds):
            continue
        rng = random.Random(seed)
        default, strict = [], []
        for i, s in enumerate(samples):
            others = rng.sample([g for j, g in enumerate(golds) if j != i and g != golds[i]], k=min(3, n - 1))
            if not others:
                continue
            spray = " ".join([*others[:2], golds[i], *others[2:]])
            try:
                default.append(float(ds.score_answer(spray, ds[s.gold["index"]])))
            except Exception:
                default.append(0.0)
            strict.append(grade({**s.gold, "completion": f"<answer>{spray}</answer>"}).reward)
        if default:
            rows.append(
                {
                    "dataset": name,
                    "n": len(default),
                    "default_mean": sum(default) / len(default),
                    "default_paid_share": sum(d > 0 for d in default) / len(default),
                    "strict_mean": sum(strict) / len(strict),
                }
            )
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Audit reasoning-gym partial credit for sprayed answers.")
    parser.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = spray_audit(args.datasets or None, n=args.n, seed=args.seed)
    paid = [r for r in result if r["default_mean"] > 0]
    for r in sorted(paid, key=lambda r: -r["default_mean"]):
        print(
            f"{r['dataset']:<28} n={r['n']:<3} default mean {r['default_mean']:.3f} "
            f"(paid {r['default_paid_share']:.0%})  strict mean {r['strict_mean']:.3f}"
        )
    print(f"{len(paid)} of {len(result)} datasets pay a sprayed answer under reasoning-gym's own scorer")

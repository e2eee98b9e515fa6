"""rlvr.verify.ifeval: every IFEval checker (with the reference grader's quirks), strict and loose
modes, Hugging Face null kwargs, malformed input, partial credit, hostile input, the offline text tools."""

import time
from pathlib import Path

import pytest

from rlvr.verify import get_verifier
from rlvr.verify.commands import verify_file
from rlvr.verify.ifeval import INSTRUCTIONS, loose_variants, verify_batch, verify_one
from rlvr.verify.ifeval.checkers import InstructionError, prepare
from rlvr.verify.ifeval.text import count_sentences, count_words, split_sentences, word_tokenize

REPO_DATA = Path(__file__).resolve().parent / "data"

IFEVAL_IDS = {
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
}

# (instruction id, kwargs, response, followed)
CASES = [
    # keyword existence is a case-insensitive substring search
    ("keywords:existence", {"keywords": ["apple", "Banana"]}, "I like APPLES and bananas.", True),
    ("keywords:existence", {"keywords": ["apple", "banana"]}, "I like apples.", False),
    ("keywords:existence", {"keywords": ["cat"]}, "Let us concatenate.", True),
    ("keywords:existence", {"keywords": ["a.c"]}, "abc", False),  # matched literally
    (
        "keywords:frequency",
        {"keyword": "love", "frequency": 3, "relation": "at least"},
        "Love, love, LOVE.",
        True,
    ),
    ("keywords:frequency", {"keyword": "love", "frequency": 3, "relation": "at least"}, "love love", False),
    ("keywords:frequency", {"keyword": "the", "frequency": 2, "relation": "less than"}, "the cat", True),
    ("keywords:frequency", {"keyword": "the", "frequency": 2, "relation": "less than"}, "then the", False),
    (
        "keywords:frequency",
        {"keyword": " love ", "frequency": 2, "relation": "at least"},
        "lovely love",
        True,
    ),
    ("keywords:forbidden_words", {"forbidden_words": ["cat", "dog"]}, "I have a Cat.", False),
    ("keywords:forbidden_words", {"forbidden_words": ["cat", "dog"]}, "concatenate dogma", True),
    (
        "keywords:letter_frequency",
        {"letter": "A", "let_frequency": 3, "let_relation": "at least"},
        "banana",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "a", "let_frequency": 3, "let_relation": "at least"},
        "AAA",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "a", "let_frequency": 3, "let_relation": "at least"},
        "Apple",
        False,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 1, "let_relation": "less than"},
        "bus",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 1, "let_relation": "less than"},
        "buzz",
        False,
    ),
    (
        "language:response_language",
        {"language": "en"},
        "This is a simple English sentence about the weather today.",
        True,
    ),
    (
        "language:response_language",
        {"language": "en"},
        "Ceci est une phrase simple en français sur le temps qu'il fait aujourd'hui.",
        False,
    ),
    (
        "language:response_language",
        {"language": "fr"},
        "Ceci est une phrase simple en français sur le temps qu'il fait aujourd'hui.",
        True,
    ),
    (
        "language:response_language",
        {"language": "de"},
        "12345 !!!",
        True,
    ),  # no language detected counts as followed
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two.", True),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "One. Two. Three.",
        False,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 2, "relation": "at least"},
        "Mr. Smith went to Washington. He left.",
        True,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "at least"},
        "Mr. Smith went to Washington. He left.",
        False,
    ),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\nB", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\nB\n***\nC", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\nA\n***\nB\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\n***\nB", False),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "one two three four five",
        True,
    ),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "it's a test", False),
    (
        "length_constraints:number_words",
        {"num_words": 4, "relation": "less than"},
        "it's a test",
        False,
    ),  # it, s, a, test
    ("length_constraints:number_words", {"num_words": 4, "relation": "less than"}, "a short one", True),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"},
        "First part.\n\nThen second.",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        'First part.\n\n"Then," he said.',
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First part.\n\nNow second.",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First.\n\nThen second.\n\nThird.",
        False,
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name].", False),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "[a\nb] [c]",
        False,
    ),  # no line crossing
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[[x]]", False),  # one lazy match
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\np. s. bye", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nps: bye", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.P.S see you", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.S. see you", False),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "Hi.\nnote: later", True),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.P.S."},
        "Hi.\nP.P.S: later",
        True,
    ),  # '.' is any char
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "- a\n- b\n- c", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro:\n* a\n  - b\nEnd", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "** bold\n* a", False),
    (
        "detectable_format:number_bullet_lists",
        {"num_bullets": 2},
        "- a\n---",
        True,
    ),  # a rule counts as a bullet
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "*\nfoo\n* b", True),
    (
        "detectable_format:number_bullet_lists",
        {"num_bullets": 2},
        "*\n* b",
        False,
    ),  # '*\n' swallows the next line
    ("detectable_format:constrained_response", {}, "My answer is yes.", True),
    ("detectable_format:constrained_response", {}, "Thinking... My answer is maybe. Because.", True),
    ("detectable_format:constrained_response", {}, "Yes.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and *two*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "**bold** text", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* **two**", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "* *\n*a\nb*", False),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nA\nSection 2\nB",
        True,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "SECTION 1 a SECTION 2 b",
        False,  # the splitter is case-sensitive
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": " SECTION ", "num_sections": 2},
        "SECTION 1 a SECTION 2 b",
        True,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section X\nSection 1",
        False,
    ),
    ("detectable_format:json_format", {}, '{"a": 1}', True),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, "{a: 1}", False),
    ("detectable_format:json_format", {}, 'Here: {"a": 1}', False),
    ("detectable_format:json_format", {}, "[" * 100_000 + "]" * 100_000, False),  # too deep for json
    ("detectable_format:title", {}, "<<My Title>>\nText", True),
    ("detectable_format:title", {}, "Text <<a>> and <<b>>", True),
    ("detectable_format:title", {}, "<< >>\ntext", False),
    ("detectable_format:title", {}, "<<a\nb>>", False),
    ("detectable_format:title", {}, "<<<>>>", False),
    ("combination:two_responses", {}, "A\n******\nB", True),
    ("combination:two_responses", {}, "******\nA\n******\nB", True),
    ("combination:two_responses", {}, "A\n******\n A ", False),  # identical
    ("combination:two_responses", {}, "A\n******\n******\nB", False),
    ("combination:two_responses", {}, "A\n******\nB\n******\nC", False),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Write a poem."},
        "write a poem. Roses are red.",
        True,
    ),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Sure! Write a poem.", False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Text.\nAny other questions?", True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Text. any other questions?"', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": "at least"},
        "THIS IS GREAT",
        True,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": "at least"},
        "This Is Great",
        False,
    ),
    # Treebank tokens: I, DO, N'T, KNOW are four all-caps words
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 4, "capital_relation": "less than"},
        "I DON'T KNOW",
        False,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "less than"},
        "a STATE-OF-THE-ART idea",
        True,
    ),
    ("change_case:english_capital", {}, "THIS IS AN ENGLISH SENTENCE ABOUT THE WEATHER TODAY.", True),
    ("change_case:english_capital", {}, "This is an English sentence about the weather today.", False),
    (
        "change_case:english_capital",
        {},
        "DIES IST EIN DEUTSCHER SATZ ÜBER DAS WETTER VON HEUTE UND MORGEN.",
        False,
    ),
    ("change_case:english_lowercase", {}, "this is an english sentence about the weather today.", True),
    ("change_case:english_lowercase", {}, "This is an english sentence about the weather today.", False),
    (
        "change_case:english_lowercase",
        {},
        "dies ist ein deutscher satz über das wetter von heute und morgen.",
        False,
    ),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "Yes, one.", False),
    ("startend:quotation", {}, '"Hello world"', True),
    ("startend:quotation", {}, '  "x"  \n', True),
    ("startend:quotation", {}, '"', False),
    ("startend:quotation", {}, "Hello", False),
]


def test_registry_is_ifevals_full_instruction_set():
    assert set(INSTRUCTIONS) == IFEVAL_IDS


def test_every_checker_has_passing_and_failing_cases():
    outcomes = {}
    for iid, _, _, expected in CASES:
        outcomes.setdefault(iid, set()).add(expected)
    assert {iid for iid, seen in outcomes.items() if seen == {True, False}} == IFEVAL_IDS


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), CASES, ids=lambda x: str(x)[:40])
def test_checker(iid, kwargs, response, expected):
    followed, detail = prepare(iid, kwargs)(response)
    assert followed is expected, detail
    assert isinstance(detail, str) and detail


def _item(completion, *instructions, **extra):
    return {
        "completion": completion,
        "instruction_id_list": [iid for iid, _ in instructions],
        "kwargs": [kw for _, kw in instructions],
        **extra,
    }


def test_verdict_reason_lists_each_instruction():
    item = _item(
        "Short answer without commas",
        ("punctuation:no_comma", {}),
        ("length_constraints:number_words", {"num_words": 50, "relation": "at least"}),
    )
    (v,) = verify_batch([item], workers=0)
    assert (v.status, v.reward) == ("incorrect", 0.0)
    assert v.reason == "punctuation:no_comma=ok; length_constraints:number_words=FAIL (4 words, need >= 50)"
    assert v.elapsed_ms > 0


def test_partial_credit_is_the_fraction_followed():
    item = _item(
        "the weather today is sunny, and we talk about the comma",
        ("punctuation:no_comma", {}),
        ("change_case:english_lowercase", {}),
        ("keywords:existence", {"keywords": ["comma"]}),
        ("detectable_format:title", {}),
    )
    (all_or_nothing,) = verify_batch([item], workers=0)
    (partial,) = verify_batch([item], workers=0, partial_credit=True)
    assert all_or_nothing.reward == 0.0 and all_or_nothing.status == "incorrect"
    assert partial.reward == pytest.approx(0.5) and partial.status == "incorrect"
    full = _item("x y z", ("punctuation:no_comma", {}))
    assert verify_batch([full], workers=0, partial_credit=True)[0].reward == 1.0


def test_loose_mode_tries_ifevals_eight_variants():
    # The first line is chatter; the rest is all lower case. Strict fails, loose passes without line 1.
    response = "Sure! Here is my answer:\nthe sky is blue because of rayleigh scattering of sunlight."
    item = _item(response, ("change_case:english_lowercase", {}))
    assert verify_batch([item], workers=0)[0].status == "incorrect"
    (v,) = verify_batch([item], workers=0, mode="loose")
    assert v.status == "correct"
    assert "loose: without first line" in v.reason
    # Asterisks removed: a markdown-bold end phrase.
    item = _item(
        "Text.\n**Any other questions?**", ("startend:end_checker", {"end_phrase": "Any other questions?"})
    )
    assert verify_batch([item], workers=0)[0].status == "incorrect"
    assert verify_batch([item], workers=0, mode="loose")[0].status == "correct"
    # Loose cannot rescue a response that fails in every variant.
    item = _item("a, b\nc, d\ne, f", ("punctuation:no_comma", {}))
    assert verify_batch([item], workers=0, mode="loose")[0].status == "incorrect"


def test_loose_variants_match_ifeval():
    names = [name for name, _ in loose_variants("*a*\nb\n*c*")]
    assert len(names) == 8 and names[0] == "as is"
    texts = [t for _, t in loose_variants("*a*\nb\n*c*")]
    assert texts == ["*a*\nb\n*c*", "a\nb\nc", "b\n*c*", "*a*\nb", "b", "b\nc", "a\nb", "b"]


def test_empty_response_follows_nothing():
    # The reference counts an empty response as not following, even "no commas".
    (v,) = verify_batch([_item("   \n", ("punctuation:no_comma", {}))], workers=0, mode="loose")
    assert v.status == "incorrect" and "empty response" in v.reason


def test_hugging_face_null_kwargs_are_dropped():
    hf_keys = dict.fromkeys(
        ["num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_bullets",
         "section_spliter", "num_sections", "capital_relation", "capital_frequency", "keywords",
         "num_paragraphs", "language", "let_relation", "letter", "let_frequency", "end_phrase",
         "forbidden_words", "keyword", "frequency", "num_sentences", "postscript_marker", "first_word",
         "nth_paragraph"]
    )  # fmt: skip
    item = {
        "completion": "Hello world. *Highlighted* and *another* one.",
        "instruction_id_list": ["detectable_format:number_highlighted_sections", "punctuation:no_comma"],
        "kwargs": [{**hf_keys, "num_highlights": 2}, dict(hf_keys)],
    }
    (v,) = verify_batch([item], workers=0)
    assert v.status == "correct", v.reason


def test_repeat_prompt_falls_back_to_the_items_prompt():
    item = _item("Tell me a joke. Why did the chicken cross the road?", ("combination:repeat_prompt", {}))
    assert verify_batch([{**item, "prompt": "Tell me a joke."}], workers=0)[0].status == "correct"
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke."}]
    assert verify_batch([{**item, "prompt": chat}], workers=0)[0].status == "correct"
    assert verify_batch([{**item, "prompt": "Something else."}], workers=0)[0].status == "incorrect"
    (v,) = verify_batch([item], workers=0)
    assert v.status == "error" and "prompt_to_repeat" in v.reason


def test_nth_paragraph_quirk_and_fix():
    # "\n\n\n\n" leaves an empty string in the split: 2 non-empty paragraphs, but the reference
    # takes paragraph 2 from the raw list, which is the empty one.
    kwargs = {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}
    item = _item("First part.\n\n\n\nThen second.", ("length_constraints:nth_paragraph_first_word", kwargs))
    (reference,) = verify_batch([item], workers=0)
    (fixed,) = verify_batch([item], workers=0, fix_nth_paragraph=True)
    assert reference.status == "incorrect" and "paragraph 2 is empty" in reference.reason
    assert fixed.status == "correct"
    well_formed = _item(
        "First part.\n\nThen second.", ("length_constraints:nth_paragraph_first_word", kwargs)
    )
    assert verify_batch([well_formed], workers=0)[0].status == "correct"
    assert verify_batch([well_formed], workers=0, fix_nth_paragraph=True)[0].status == "correct"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (_item("x", ("keywords:nonexistent", {})), "unknown instruction id 'keywords:nonexistent'"),
        (_item("x", ("keywords:frequency", {"keyword": "a", "frequency": "3", "relation": "at least"})), "must be an integer"),
        (_item("x", ("keywords:frequency", {"keyword": "a", "frequency": 3, "relation": "at most"})), "must be one of"),
        (_item("x", ("keywords:existence", {"keywords": "apple"})), "non-empty list"),
        (_item("x", ("keywords:existence", {})), "missing kwarg 'keywords'"),
        (_item("x", ("punctuation:no_comma", {"num_words": 3})), "unexpected kwarg"),
        (_item("x", ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"})), "one ASCII letter"),
        (_item("x", ("keywords:letter_frequency", {"letter": "é", "let_frequency": 1, "let_relation": "at least"})), "one ASCII letter"),
        (_item("x", ("length_constraints:number_words", {"num_words": -1, "relation": "at least"})), ">= 0"),
        (_item("x", ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"})), "nth_paragraph"),
        ({"completion": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, "one object per instruction"),
        ({"completion": "x", "instruction_id_list": [], "kwargs": []}, "non-empty list"),
        ({"completion": None, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}, "'completion' must be a string"),
        ({"completion": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": ["oops"]}, "kwargs must be an object"),
        ("not a dict", "item must be an object"),
    ],
)  # fmt: skip
def test_malformed_items_are_errors_naming_the_problem(item, message):
    (v,) = verify_batch([item], workers=0)
    assert v.status == "error" and v.reward == 0.0
    assert message in v.reason


def test_prepare_raises_instruction_error():
    with pytest.raises(InstructionError, match="unknown instruction id"):
        prepare("foo:bar", {})


def test_a_checker_that_raises_is_an_error_not_a_crash(monkeypatch):
    from rlvr.verify.ifeval import checkers

    def broken(value):
        raise RuntimeError("boom")

    monkeypatch.setitem(checkers.INSTRUCTIONS, "punctuation:no_comma", checkers.Instruction(broken, {}))
    (v,) = verify_batch([_item("x", ("punctuation:no_comma", {}))], workers=0)
    assert v.status == "error" and "punctuation:no_comma: checker raised RuntimeError: boom" in v.reason


def test_unknown_options_are_ignored_and_bad_mode_rejected():
    item = _item("x", ("punctuation:no_comma", {}))
    assert verify_batch([item], workers=0, unsafe_no_sandbox=True)[0].status == "correct"
    with pytest.raises(ValueError, match="mode"):
        verify_batch([item], workers=0, mode="lenient")
    assert verify_batch([], workers=2) == []


def test_language_detection_is_deterministic():
    text = "ok fine"  # short and ambiguous: langdetect's sampling would vary without a fixed seed
    kw = {"language": "en"}
    results = {verify_one(_item(text, ("language:response_language", kw))).reason for _ in range(5)}
    assert len(results) == 1


def test_long_completions_are_not_graded_beyond_max_chars():
    item = _item("a" * 1000, ("punctuation:no_comma", {}))
    (v,) = verify_batch([item], workers=0, max_chars=500)
    assert v.status == "error" and "max_chars=500" in v.reason
    assert verify_batch([item], workers=0)[0].status == "correct"


HOSTILE = {
    "open brackets": "[" * 100_000,
    "angle brackets": "<<" * 50_000,
    "whitespace then p.": " " * 99_990 + "p.",
    "blank lines": "\n" * 100_000,
    "star lines": "*\n" * 50_000,
    "indented stars": " " * 99_990 + "*",
    "dots": ". " * 50_000,
    "bangs": "!" * 100_000,
    "sentences": "Hello World. " * 7_000,
}


def test_hostile_completions_finish_quickly_in_process():
    instructions = [(iid, kw) for iid, kw, _, _ in {c[0]: c for c in CASES}.values()]
    items = [_item(text, *instructions) for text in HOSTILE.values()]
    t0 = time.perf_counter()
    verdicts = verify_batch(items, workers=0, mode="loose")
    elapsed = time.perf_counter() - t0
    assert all(v.status in ("correct", "incorrect") for v in verdicts), [v.reason for v in verdicts]
    assert elapsed < 30, f"{elapsed:.1f}s for {len(items)} hostile 100k-character completions (loose)"


def test_pool_grades_in_order_and_times_out_hard():
    fast = [_item(f"answer {i}", ("punctuation:no_comma", {})) for i in range(6)]
    # 600,000 sentences to split: several seconds of work, far past the 1.5 s limit.
    slow = _item(
        "Hello World. " * 600_000,
        ("length_constraints:number_sentences", {"num_sentences": 1, "relation": "at least"}),
    )
    t0 = time.perf_counter()
    verdicts = verify_batch([*fast[:3], slow, *fast[3:]], workers=2, timeout=1.5, max_chars=10**8)
    assert time.perf_counter() - t0 < 10
    assert [v.status for v in verdicts] == ["correct"] * 3 + ["timeout"] + ["correct"] * 3
    assert "1.5s" in verdicts[3].reason


def test_registered_as_the_ifeval_verifier_and_cli_file(tmp_path):
    assert get_verifier("ifeval") is verify_batch
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "completion": "no commas here", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}\n'
        '{"id": "b", "completion": "a, b", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}\n'
    )
    summary = verify_file("ifeval", src, tmp_path / "out.jsonl", workers=0)
    assert summary["counts"]["correct"] == 1 and summary["counts"]["incorrect"] == 1
    assert '"id": "b"' in (tmp_path / "out.jsonl").read_text()


# --- offline sentence splitting and tokenization --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("", []),
        ("   ", []),
        ("no punctuation at all\nnext line", ["no punctuation at all\nnext line"]),
        ("Hello world. This is Mr. Smith. He paid $3.50 for it.", ["Hello world.", "This is Mr. Smith.", "He paid $3.50 for it."]),
        ("He arrived at 3.30 p.m. on Monday. Then he left.", ["He arrived at 3.30 p.m. on Monday.", "Then he left."]),
        ("I bought apples, pears, etc. and more.", ["I bought apples, pears, etc. and more."]),
        ("I bought apples, pears, etc. But not plums.", ["I bought apples, pears, etc.", "But not plums."]),
        ("Fruit, e.g. apples, is good. I.e. healthy.", ["Fruit, e.g. apples, is good.", "I.e. healthy."]),
        ("Wait... what? Yes! Really?! Fine.", ["Wait... what?", "Yes!", "Really?!", "Fine."]),
        ("Wait... The end.", ["Wait...", "The end."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("(It works.) Next one.", ["(It works.)", "Next one."]),
        ("J. S. Bach wrote fugues. He was German.", ["J. S. Bach wrote fugues.", "He was German."]),
        ("The U.S. Army is large. It is.", ["The U.S. Army is large.", "It is."]),
        ("Pi is 3.14159. That is all.", ["Pi is 3.14159.", "That is all."]),
        ("1. First item\n2. Second item", ["1.", "First item\n2.", "Second item"]),
        ("Really?!", ["Really?", "!"]),  # a final '!' after '?' is its own sentence, as in NLTK
    ],
)  # fmt: skip
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences
    assert count_sentences(text) == len(sentences)


def test_word_tokenize_follows_treebank_rules():
    tokens = word_tokenize("I DON'T KNOW. IT'S THE U.S.A. \"HELLO\" STATE-OF-THE-ART, CANNOT (WOW) x--Y")
    assert tokens == [
        "I", "DO", "N'T", "KNOW", ".", "IT", "'S", "THE", "U.S.A.", "``", "HELLO", "''",
        "STATE-OF-THE-ART", ",", "CAN", "NOT", "(", "WOW", ")", "x", "--", "Y",
    ]  # fmt: skip
    assert word_tokenize('She said "no."') == ["She", "said", "``", "no", ".", "''"]


def test_count_words_is_word_character_runs():
    assert count_words("Hello, world! It's 3.14 e_x") == 7
    assert count_words("") == 0
    assert count_words("naïve café") == 2


def test_sample_file_grades_without_errors_and_loose_is_never_stricter(tmp_path):
    from rlvr.io import read_jsonl

    sample = REPO_DATA / "ifeval_sample.jsonl"
    summary = verify_file("ifeval", sample, tmp_path / "out.jsonl", workers=2)
    assert summary["n"] == 120
    assert summary["counts"]["error"] == summary["counts"]["timeout"] == 0
    assert 0 < summary["counts"]["correct"] < 120
    rows = read_jsonl(sample)
    strict = verify_batch(rows, workers=0)
    loose = verify_batch(rows, workers=0, mode="loose", partial_credit=True)
    strict_partial = verify_batch(rows, workers=0, partial_credit=True)
    assert [v.status for v in strict] == [r["status"] for r in read_jsonl(tmp_path / "out.jsonl")]
    assert all(lo.reward >= st.reward for lo, st in zip(loose, strict_partial, strict=True))
    assert sum(lo.reward for lo in loose) > sum(st.reward for st in strict_partial)


def test_samples_from_the_data_loader_form_reach_the_verifier():
    from rlvr.records import Sample
    from rlvr.verify import verify_samples

    gold = {
        "instruction_id_list": ["combination:repeat_prompt", "punctuation:no_comma"],
        "kwargs": [{}, {}],
        "prompt": "Name a color.",
    }
    sample = Sample(id="s1", prompt="Name a color.", verifier="ifeval", gold=gold)
    good, bad = verify_samples([sample, sample], ["Name a color. Blue.", "Blue, obviously."], workers=0)
    assert good.status == "correct" and bad.status == "incorrect"
    assert (
        "combination:repeat_prompt=FAIL" in bad.reason
        and "punctuation:no_comma=FAIL (1 commas)" in bad.reason
    )

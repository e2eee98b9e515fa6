"""The 25 IFEval instruction checkers, with the reference grader's semantics.

Each checker takes the response and its validated arguments and returns ``(followed, detail)``; the
detail says what was measured (``"12 < 50"``). :func:`prepare` validates an instruction's ``kwargs``
and binds them. Semantics follow google-research ``instruction_following_eval`` (the grader behind
published IFEval scores), quirks included; the deliberate differences are:

* keywords, forbidden words, section splitters and postscript markers are matched literally (the
  reference compiles them as regular expressions; the same thing for every argument in the IFEval
  data, and it keeps a hostile argument from running a catastrophic pattern). A ``.`` in a postscript
  marker still matches any character, as in the reference.
* patterns that backtrack quadratically on adversarial text (``\\[.*?\\]``, ``^\\s*\\*[^\\*].*$``,
  ``<<[^\\n]+>>``, ``\\s*p\\.\\s?s\\..*$``) are computed by linear scans that give the same matches.
* sentence counts and word tokens come from :mod:`rlvr.verify.ifeval.text` instead of NLTK's Punkt.
* arguments the reference would replace by random values (missing, negative, out of range) are errors.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from rlvr.verify.ifeval import text

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

Result = tuple[bool, str]


class InstructionError(ValueError):
    """An instruction that cannot be graded: unknown id or malformed arguments."""


# --- helpers -------------------------------------------------------------------------------------------


def _compare(count: int, relation: str, threshold: int, what: str) -> Result:
    if relation == "less than":
        return count < threshold, f"{count} {what}, need < {threshold}"
    return count >= threshold, f"{count} {what}, need >= {threshold}"


@functools.lru_cache(maxsize=64)  # one response is often checked for language and for case + language
def detect_language(value: str) -> str | None:
    """langdetect's language code with a fixed seed (deterministic); None when it finds no features."""
    import langdetect
    from langdetect.lang_detect_exception import LangDetectException

    langdetect.DetectorFactory.seed = 0
    try:
        return langdetect.detect(value)
    except LangDetectException:
        return None


_NON_SPACE = re.compile(r"\S")


def _count_line_starts(value: str, marker: str, star: bool) -> int:
    """Matches of ``^\\s*\\*[^\\*].*$`` (``star``) or ``^\\s*-.*$`` under re.MULTILINE, in linear time.

    ``\\s*`` may cross blank lines, and for ``*`` the character after the marker may be a newline, in
    which case the match swallows the next line, exactly as the reference's findall does.
    """
    n, pos, count = len(value), 0, 0
    while pos < n:
        m = _NON_SPACE.search(value, pos)
        if m is None:
            break
        q = m.start()
        if value[q] == marker and (not star or (q + 1 < n and value[q + 1] != "*")):
            count += 1
            end = value.find("\n", q + 2 if star else q + 1)
            if end < 0:
                break
            pos = end if value[end - 1] == "\n" else end + 1
        else:
            end = value.find("\n", q)
            if end < 0:
                break
            pos = end + 1
    return count


# --- checkers ------------------------------------------------------------------------------------------


def keywords_existence(value: str, *, keywords: list[str]) -> Result:
    missing = [k for k in sorted(keywords) if not re.search(re.escape(k), value, flags=re.IGNORECASE)]
    return not missing, f"missing {missing}" if missing else "all present"


def keywords_frequency(value: str, *, keyword: str, frequency: int, relation: str) -> Result:
    keyword = keyword.strip()
    count = len(re.findall(re.escape(keyword), value, flags=re.IGNORECASE))
    return _compare(count, relation, frequency, f"x {keyword!r}")


def keywords_forbidden_words(value: str, *, forbidden_words: list[str]) -> Result:
    found = [
        w
        for w in sorted(set(forbidden_words))
        if re.search(r"\b" + re.escape(w) + r"\b", value, flags=re.IGNORECASE)
    ]
    return not found, f"found {found}" if found else "none found"


def keywords_letter_frequency(value: str, *, letter: str, let_frequency: int, let_relation: str) -> Result:
    letter = letter.lower()
    return _compare(value.lower().count(letter), let_relation, let_frequency, f"x {letter!r}")


def language_response_language(value: str, *, language: str) -> Result:
    detected = detect_language(value)
    if detected is None:  # the reference counts an undetectable language as followed
        return True, "no language detected"
    return detected == language, f"detected {detected!r}, need {language!r}"


def length_number_sentences(value: str, *, num_sentences: int, relation: str) -> Result:
    return _compare(text.count_sentences(value), relation, num_sentences, "sentences")


def length_number_paragraphs(value: str, *, num_paragraphs: int) -> Result:
    paragraphs = re.split(r"\s?\*\*\*\s?", value)
    count = len(paragraphs)
    for i, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if i in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False, f"empty paragraph {i + 1} between *** dividers"
    return count == num_paragraphs, f"{count} paragraphs, need {num_paragraphs}"


def length_number_words(value: str, *, num_words: int, relation: str) -> Result:
    return _compare(text.count_words(value), relation, num_words, "words")


def length_nth_paragraph_first_word(
    value: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str, fix_nth_paragraph: bool = False
) -> Result:
    """Paragraphs are split on ``\\n\\n``; the count ignores empty ones.

    The reference then indexes the raw split list, empty paragraphs included, so ``"a\\n\\n\\n\\nb"``
    has 2 paragraphs but its 2nd is the empty string. ``fix_nth_paragraph`` indexes the non-empty
    paragraphs instead.
    """
    paragraphs = value.split("\n\n")
    non_empty = [p for p in paragraphs if p.strip()]
    count = len(non_empty)
    if nth_paragraph > count:
        return False, f"{count} paragraphs, no paragraph {nth_paragraph}"
    paragraph = (non_empty if fix_nth_paragraph else paragraphs)[nth_paragraph - 1].strip()
    if not paragraph:
        return False, f"paragraph {nth_paragraph} is empty"
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    first_word = first_word.lower()
    ok = count == num_paragraphs and first == first_word
    return (
        ok,
        f"{count} paragraphs (need {num_paragraphs}), paragraph {nth_paragraph} starts {first!r} (need {first_word!r})",
    )


def content_number_placeholders(value: str, *, num_placeholders: int) -> Result:
    count = 0
    for line in value.split("\n"):  # [...] never spans lines: '.' does not match '\n'
        pos = 0
        while (i := line.find("[", pos)) >= 0 and (j := line.find("]", i + 1)) >= 0:
            count += 1
            pos = j + 1
    return count >= num_placeholders, f"{count} placeholders, need >= {num_placeholders}"


def _marker_pattern(marker: str) -> str:
    """The marker as a literal pattern, except that '.' keeps its any-character meaning."""
    return ".".join(re.escape(part) for part in marker.split("."))


def content_postscript(value: str, *, postscript_marker: str) -> Result:
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"p\.\s?p\.\s?s"
    elif marker == "P.S.":
        pattern = r"p\.\s?s\."
    else:
        pattern = _marker_pattern(marker.lower())
    found = re.search(pattern, value.lower()) is not None
    return found, f"postscript {marker!r} {'found' if found else 'not found'}"


def format_number_bullet_lists(value: str, *, num_bullets: int) -> Result:
    count = _count_line_starts(value, "*", star=True) + _count_line_starts(value, "-", star=False)
    return count == num_bullets, f"{count} bullets, need {num_bullets}"


def format_constrained_response(value: str) -> Result:
    value = value.strip()
    ok = any(option in value for option in CONSTRAINED_RESPONSES)
    return ok, "option found" if ok else "none of the options found"


def format_number_highlighted_sections(value: str, *, num_highlights: int) -> Result:
    count = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
    count += sum(
        1 for h in re.findall(r"\*\*[^\n\*]*\*\*", value) if h.removeprefix("**").removesuffix("**").strip()
    )
    return count >= num_highlights, f"{count} highlights, need >= {num_highlights}"


def format_multiple_sections(value: str, *, section_spliter: str, num_sections: int) -> Result:
    splitter = section_spliter.strip()
    count = len(re.split(r"\s?" + re.escape(splitter) + r"\s?\d+\s?", value)) - 1
    return count >= num_sections, f"{count} sections, need >= {num_sections}"


def format_json_format(value: str) -> Result:
    value = (
        value.strip()
        .removeprefix("```json")
        .removeprefix("```Json")
        .removeprefix("```JSON")
        .removeprefix("```")
        .removesuffix("```")
        .strip()
    )
    try:
        json.loads(value)
    except ValueError as e:
        return False, f"not JSON: {str(e)[:80]}"
    except RecursionError:
        return False, "not JSON: nested too deeply"
    return True, "valid JSON"


def format_title(value: str) -> Result:
    # <<[^\n]+>> matches at most once per line: from the first "<<" to the last ">>" after it.
    for line in value.split("\n"):
        i = line.find("<<")
        j = line.rfind(">>")
        if i >= 0 and j >= i + 3 and line[i : j + 2].lstrip("<").rstrip(">").strip():
            return True, "title found"
    return False, "no <<title>>"


def combination_two_responses(value: str) -> Result:
    valid = []
    parts = value.split("******")
    for i, part in enumerate(parts):
        if part.strip():
            valid.append(part)
        elif i not in (0, len(parts) - 1):
            return False, "empty response between ****** separators"
    if len(valid) != 2:
        return False, f"{len(valid)} responses, need 2"
    if valid[0].strip() == valid[1].strip():
        return False, "the two responses are identical"
    return True, "two different responses"


def combination_repeat_prompt(value: str, *, prompt_to_repeat: str) -> Result:
    ok = value.strip().lower().startswith(prompt_to_repeat.strip().lower())
    return ok, "starts with the prompt" if ok else "does not start with the prompt"


def startend_end_checker(value: str, *, end_phrase: str) -> Result:
    phrase = end_phrase.strip().lower()
    ok = value.strip().strip('"').lower().endswith(phrase)
    return ok, f"ends with {phrase!r}" if ok else f"does not end with {phrase!r}"


def change_case_capital_word_frequency(
    value: str, *, capital_frequency: int, capital_relation: str
) -> Result:
    count = sum(1 for word in text.word_tokenize(value) if word.isupper())
    return _compare(count, capital_relation, capital_frequency, "capitalised words")


def change_case_english_capital(value: str) -> Result:
    if not value.isupper():
        return False, "not all upper case"
    detected = detect_language(value)
    if detected is None:
        return True, "upper case; no language detected"
    return detected == "en", f"upper case; detected {detected!r}"


def change_case_english_lowercase(value: str) -> Result:
    if not value.islower():
        return False, "not all lower case"
    detected = detect_language(value)
    if detected is None:
        return True, "lower case; no language detected"
    return detected == "en", f"lower case; detected {detected!r}"


def punctuation_no_comma(value: str) -> Result:
    count = value.count(",")
    return count == 0, f"{count} commas"


def startend_quotation(value: str) -> Result:
    value = value.strip()
    ok = len(value) > 1 and value[0] == '"' and value[-1] == '"'
    return ok, "wrapped in double quotes" if ok else "not wrapped in double quotes"


# --- registry and argument validation ------------------------------------------------------------------

INT, STR, STR_LIST, RELATION = "int", "str", "list[str]", "relation"


@dataclass(frozen=True)
class Instruction:
    check: Callable[..., Result]
    params: dict[str, str]  # name -> kind; all required


INSTRUCTIONS: dict[str, Instruction] = {
    "keywords:existence": Instruction(keywords_existence, {"keywords": STR_LIST}),
    "keywords:frequency": Instruction(
        keywords_frequency, {"keyword": STR, "frequency": INT, "relation": RELATION}
    ),
    "keywords:forbidden_words": Instruction(keywords_forbidden_words, {"forbidden_words": STR_LIST}),
    "keywords:letter_frequency": Instruction(
        keywords_letter_frequency, {"letter": STR, "let_frequency": INT, "let_relation": RELATION}
    ),
    "language:response_language": Instruction(language_response_language, {"language": STR}),
    "length_constraints:number_sentences": Instruction(
        length_number_sentences, {"num_sentences": INT, "relation": RELATION}
    ),
    "length_constraints:number_paragraphs": Instruction(length_number_paragraphs, {"num_paragraphs": INT}),
    "length_constraints:number_words": Instruction(
        length_number_words, {"num_words": INT, "relation": RELATION}
    ),
    "length_constraints:nth_paragraph_first_word": Instruction(
        length_nth_paragraph_first_word, {"num_paragraphs": INT, "nth_paragraph": INT, "first_word": STR}
    ),
    "detectable_content:number_placeholders": Instruction(
        content_number_placeholders, {"num_placeholders": INT}
    ),
    "detectable_content:postscript": Instruction(content_postscript, {"postscript_marker": STR}),
    "detectable_format:number_bullet_lists": Instruction(format_number_bullet_lists, {"num_bullets": INT}),
    "detectable_format:constrained_response": Instruction(format_constrained_response, {}),
    "detectable_format:number_highlighted_sections": Instruction(
        format_number_highlighted_sections, {"num_highlights": INT}
    ),
    "detectable_format:multiple_sections": Instruction(
        format_multiple_sections, {"section_spliter": STR, "num_sections": INT}
    ),
    "detectable_format:json_format": Instruction(format_json_format, {}),
    "detectable_format:title": Instruction(format_title, {}),
    "combination:two_responses": Instruction(combination_two_responses, {}),
    "combination:repeat_prompt": Instruction(combination_repeat_prompt, {"prompt_to_repeat": STR}),
    "startend:end_checker": Instruction(startend_end_checker, {"end_phrase": STR}),
    "change_case:capital_word_frequency": Instruction(
        change_case_capital_word_frequency, {"capital_frequency": INT, "capital_relation": RELATION}
    ),
    "change_case:english_capital": Instruction(change_case_english_capital, {}),
    "change_case:english_lowercase": Instruction(change_case_english_lowercase, {}),
    "punctuation:no_comma": Instruction(punctuation_no_comma, {}),
    "startend:quotation": Instruction(startend_quotation, {}),
}

LANGUAGE_INSTRUCTIONS = frozenset(
    {"language:response_language", "change_case:english_capital", "change_case:english_lowercase"}
)


def _coerce(instruction_id: str, name: str, kind: str, value: Any) -> Any:
    where = f"{instruction_id}: kwarg {name!r}"
    if kind == INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InstructionError(f"{where} must be an integer, got {value!r}")
        if value < 0:
            raise InstructionError(f"{where} must be >= 0, got {value}")
        return value
    if kind == STR_LIST:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise InstructionError(f"{where} must be a non-empty list of non-empty strings, got {value!r}")
        return value
    if not isinstance(value, str):
        raise InstructionError(f"{where} must be a string, got {value!r}")
    if kind == RELATION and value not in RELATIONS:
        raise InstructionError(f"{where} must be one of {RELATIONS}, got {value!r}")
    return value


def prepare(
    instruction_id: str,
    kwargs: dict[str, Any] | None,
    prompt: str | None = None,
    fix_nth_paragraph: bool = False,
) -> Callable[[str], Result]:
    """Validate ``kwargs`` for ``instruction_id`` and return ``check(response) -> (followed, detail)``.

    Null-valued kwargs are dropped first (the Hugging Face copy of IFEval gives every key of every
    instruction, nulls included). ``prompt`` stands in for a missing ``prompt_to_repeat``.
    """
    if not isinstance(instruction_id, str) or instruction_id not in INSTRUCTIONS:
        raise InstructionError(f"unknown instruction id {instruction_id!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise InstructionError(f"{instruction_id}: kwargs must be an object, got {type(kwargs).__name__}")
    instruction = INSTRUCTIONS[instruction_id]
    given = {k: v for k, v in kwargs.items() if v is not None}
    if instruction_id == "combination:repeat_prompt" and "prompt_to_repeat" not in given and prompt:
        given["prompt_to_repeat"] = prompt
    unexpected = sorted(set(given) - set(instruction.params))
    if unexpected:
        raise InstructionError(f"{instruction_id}: unexpected kwarg(s) {unexpected}")
    args = {}
    for name, kind in instruction.params.items():
        if name not in given:
            raise InstructionError(f"{instruction_id}: missing kwarg {name!r}")
        args[name] = _coerce(instruction_id, name, kind, given[name])
    _check_ranges(instruction_id, args)
    if instruction_id == "length_constraints:nth_paragraph_first_word":
        args["fix_nth_paragraph"] = fix_nth_paragraph
    return partial(instruction.check, **args)


def _check_ranges(instruction_id: str, args: dict[str, Any]) -> None:
    """Arguments the reference would silently replace with random ones."""
    if instruction_id == "keywords:letter_frequency" and not (
        len(args["letter"]) == 1 and "a" <= args["letter"].lower() <= "z"
    ):
        raise InstructionError(
            f"{instruction_id}: kwarg 'letter' must be one ASCII letter, got {args['letter']!r}"
        )
    if instruction_id == "keywords:frequency" and not args["keyword"].strip():
        raise InstructionError(f"{instruction_id}: kwarg 'keyword' is empty")
    if instruction_id == "length_constraints:nth_paragraph_first_word" and not (
        1 <= args["nth_paragraph"] <= args["num_paragraphs"]
    ):
        raise InstructionError(
            f"{instruction_id}: kwarg 'nth_paragraph' must be in 1..num_paragraphs, got {args['nth_paragraph']}"
        )
    for name in ("postscript_marker", "section_spliter", "end_phrase", "prompt_to_repeat"):
        if name in args and not args[name].strip():
            raise InstructionError(f"{instruction_id}: kwarg {name!r} is empty")

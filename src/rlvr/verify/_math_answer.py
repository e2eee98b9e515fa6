"""String side of the math verifier: final-answer extraction, normalisation, exact numbers, structures.

Everything here is plain Python and regular expressions on bounded strings, cheap enough to run on
every completion before any CAS work (see :mod:`rlvr.verify.math` for the conventions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

MAX_ANSWER_CHARS = 1000  # a final answer longer than this is not graded
MAX_BRACE_DEPTH = 40  # nor one nested deeper than this
MAX_EXPONENT = 1000  # decimal exponents beyond +-1000 are left to the guarded CAS path
MAX_ELEMENTS = 64  # elements of a set / tuple / list answer


# ---------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------


@dataclass
class Extraction:
    answer: str | None  # the final answer string (None: nothing to grade)
    others: list[str] = field(default_factory=list)  # other boxed answers on the final box's line
    problem: str = ""  # why nothing could be graded, when answer is None


_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_ANCHOR = re.compile(r"the final answer is|answer\s*:|####", re.IGNORECASE)
_LEAD_IN = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s+[A-Z]|\s*$)")


def _braced(text: str, start: int) -> tuple[str, int] | str:
    """Content of the ``{...}`` opening at ``text[start]`` and the index after it, or a problem string."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # an escaped brace \{ \} does not count
            continue
        if c == "{":
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return f"braces nested deeper than {MAX_BRACE_DEPTH}"
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return "unclosed \\boxed{...}"


def _box_at(text: str, m: re.Match) -> tuple[str, int] | str:
    i = m.end()
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        return _braced(text, i)
    arg = re.match(r"[^\s$]+", text[i:])  # \boxed 5
    if not arg:
        return "empty \\boxed"
    return arg.group(0), i + arg.end()


def extract_final_answer(text: str) -> Extraction:
    """The last ``\\boxed{}``/``\\fbox{}``; else the text after the last answer anchor; else nothing."""
    boxes = list(_BOX.finditer(text))
    if boxes:
        last = boxes[-1]
        got = _box_at(text, last)
        if isinstance(got, str):
            return Extraction(None, problem=got)
        answer, _ = got
        line_start = text.rfind("\n", 0, last.start()) + 1
        others = []
        for m in boxes[:-1]:
            if m.start() >= line_start:
                other = _box_at(text, m)
                if not isinstance(other, str):
                    others.append(other[0])
        return Extraction(answer.strip(), others)
    anchors = list(_ANCHOR.finditer(text))
    if not anchors:
        return Extraction(
            None, problem="no \\boxed{} answer and no 'Answer:' / 'The final answer is' / '####'"
        )
    rest = text[anchors[-1].end() :]
    lines = [ln.strip() for ln in rest.split("\n")]
    line = lines[0].strip(" *:") or next((ln for ln in lines[1:] if ln.strip(" *:")), "")
    line = line.strip(" *:")
    end = _SENTENCE_END.search(line)
    if end:
        line = line[: end.start()]
    line = _LEAD_IN.sub("", line.strip().strip("*").strip())
    if not line:
        return Extraction(None, problem="nothing after the final-answer marker")
    return Extraction(line)


# ---------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Norm:
    text: str  # normalised LaTeX-ish string
    percent: bool = False  # a percent sign was removed


_UNICODE = {"−": "-", "√": "\\sqrt", "π": "\\pi ", "×": "\\times ", "·": "\\cdot ", "∞": "\\infty ", "÷": "/"}
_SQRT_BARE = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z](?![a-zA-Z]))")  # \sqrt2 -> \sqrt{2}
_FRAC_BARE = re.compile(r"\\frac\s*(\d)\s*(\d)")  # \frac12 -> \frac{1}{2}
_SPACES = re.compile(r"\\[,;:! ]|\\q?quad\b|~|\\displaystyle|\\left\b|\\right\b|\\big[lr]?\b|\\Big[lr]?\b")
_MATH_DELIMS = re.compile(r"^\$+|\$+$|^\\\(|\\\)$|^\\\[|\\\]$")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b|\\circ\b")
_PERCENT = re.compile(r"\\%|%|\\text\{\s*percent\s*\}|\bpercent\b")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|mathit|boldsymbol|operatorname)\s*\{")
_UNIT_TAIL = re.compile(
    r"(?:\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}(?:\s*\^\s*\{?\d\}?)?|\s+[a-zA-Z]+\.?(?:\s*\^\s*\{?\d\}?)?)+$"
)
_LEADING_VAR = re.compile(r"^\\?[a-zA-Z]+(?:_\{?\w+\}?)?(?:\([a-z]\))?\s*(?:=|\\in\b)\s*")
_DOLLAR = re.compile(r"\\\$|\$|\\textdollar\b|\bUSD\b")


def _unwrap_text_cmds(s: str) -> str:
    """``\\text{abc}`` -> ``abc`` (the same for mbox, mathrm, mathbf, ...)."""
    while True:
        m = _TEXT_CMD.search(s)
        if not m:
            return s
        got = _braced(s, m.end() - 1)
        if isinstance(got, str):
            return s[: m.start()] + s[m.end() :]
        inner, end = got
        s = s[: m.start()] + inner + s[end:]


def _strip_units(s: str) -> str:
    """A number followed by units ("5 cm", "5\\text{ cm}^2", "12 dollars") is that number."""
    tail = _UNIT_TAIL.search(s)
    if tail and tail.start() > 0 and to_number(s[: tail.start()].strip()) is not None:
        return s[: tail.start()].strip()
    return s


def normalise(s: str, *, strip_var: bool = True) -> Norm:
    """Canonical form of one answer: spacing, delimiters, units, degrees, currency, percent, ``x =``."""
    s = s.strip()
    for _ in range(3):
        s = _MATH_DELIMS.sub("", s).strip()
    s = _SPACES.sub(" ", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = s.replace("{,}", ",")
    for char, latex in _UNICODE.items():
        if char in s:
            s = s.replace(char, latex)
    s = _SQRT_BARE.sub(r"\\sqrt{\1}", s)
    s = _FRAC_BARE.sub(r"\\frac{\1}{\2}", s)
    s = _DEGREES.sub("", s)
    s = _DOLLAR.sub("", s)
    s, n_percent = _PERCENT.subn("", s)
    s = s.strip().rstrip(".").strip()
    s = _unwrap_text_cmds(_strip_units(s)).strip()
    s = _strip_units(s)
    if strip_var and (s.count("=") == 1 or re.match(r"^\\?[a-zA-Z]+\s*\\in\b", s)):
        s = _LEADING_VAR.sub("", s, count=1)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    return Norm(s, percent=n_percent > 0)


_WORDS = re.compile(r"\(?([A-Za-z][A-Za-z '\-]*[A-Za-z]|[A-Za-z])\)?\.?")


def as_text(s: str) -> str | None:
    """Lower-cased words when ``s`` is a plain word answer ("Tuesday", "(B)", "no solution"), else None."""
    m = _WORDS.fullmatch(s)
    return " ".join(m.group(1).lower().split()) if m else None


# ---------------------------------------------------------------------------------------------------
# Exact numbers
# ---------------------------------------------------------------------------------------------------

_DEC = r"(?:\d+\.?\d*|\.\d+)"
_PLAIN = re.compile(rf"[+-]?{_DEC}")
_THOUSANDS = re.compile(r"([+-]?)(\d{1,3}(?:[, ]\d{3})+)(\.\d+)?")
_SCI_E = re.compile(rf"([+-]?{_DEC})[eE]([+-]?\d+)")
_SCI_TIMES = re.compile(rf"([+-]?{_DEC})\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{{?\s*([+-]?\d+)\s*\}}?")
_POW10 = re.compile(r"([+-]?)10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?")
_SLASH = re.compile(rf"([+-]?)\s*({_DEC})\s*/\s*({_DEC})")
_FRAC = re.compile(r"([+-]?)\s*\\frac\s*(\d|\{\s*[+-]?[\d.]+\s*\})\s*(\d|\{\s*[+-]?[\d.]+\s*\})")
_MIXED_FRAC = re.compile(r"([+-]?)(\d+)\s*\\frac\s*(\d|\{\s*\d+\s*\})\s*(\d|\{\s*\d+\s*\})")
_MIXED_SLASH = re.compile(r"([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)")


def _dec(s: str) -> Fraction:
    return Fraction(s.strip("{} "))


def to_number(s: str) -> Fraction | None:
    """The exact rational value of a plain number in any common notation, or None.

    Integers, decimals (exactly: 0.33 is 33/100), thousands separators, scientific notation, a/b,
    ``\\frac{a}{b}``, mixed numbers (``3\\frac{1}{2}``, ``3 1/2``).
    """
    s = s.strip()
    if len(s) > 200:
        return None
    if s.startswith("(") and s.endswith(")") and "," not in s:
        s = s[1:-1].strip()
    try:
        if _PLAIN.fullmatch(s):
            return Fraction(s)
        if m := _THOUSANDS.fullmatch(s):
            return Fraction(m.group(1) + re.sub(r"[, ]", "", m.group(2)) + (m.group(3) or ""))
        if (m := _SCI_E.fullmatch(s) or _SCI_TIMES.fullmatch(s)) and abs(int(m.group(2))) <= MAX_EXPONENT:
            return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
        if (m := _POW10.fullmatch(s)) and abs(int(m.group(2))) <= MAX_EXPONENT:
            return (-1 if m.group(1) == "-" else 1) * Fraction(10) ** int(m.group(2))
        if m := _SLASH.fullmatch(s) or _FRAC.fullmatch(s):
            value = _dec(m.group(2)) / _dec(m.group(3))
            return -value if m.group(1) == "-" else value
        if m := _MIXED_FRAC.fullmatch(s) or _MIXED_SLASH.fullmatch(s):
            num, den = _dec(m.group(3)), _dec(m.group(4))
            if num >= den:  # "3 5/2" is not a mixed number
                return None
            value = int(m.group(2)) + num / den
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


# ---------------------------------------------------------------------------------------------------
# Structures: sets, tuples, intervals, lists
# ---------------------------------------------------------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def split_top(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and braces (``\\{``/``\\}`` count as braces)."""
    parts, depth, start, i = [], 0, 0, 0
    n, k = len(s), len(sep)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + k
            i += k
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _encloses(s: str) -> bool:
    """True when the bracket opening at s[0] closes at s[-1] (mixed kinds allowed: ``[1, 2)``)."""
    depth = 0
    for i, c in enumerate(s):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i == len(s) - 1
    return False


@dataclass(frozen=True)
class Structure:
    kind: str  # "set", "list" (bare, unordered), or the bracket pair of a tuple/interval: "()", "[)", ...
    items: tuple[str, ...]


_OR = re.compile(r"\s+or\s+|\\lor\b|\\vee\b")


def alternatives(s: str) -> list[str]:
    """The parts of an ``a or b`` answer (one part when there is no top-level "or")."""
    if not _OR.search(s):
        return [s]
    parts = [p for chunk in split_top(s, " or ") for p in re.split(r"\\lor\b|\\vee\b", chunk)]
    return [p.strip() for p in parts if p.strip()]


def structure(s: str) -> Structure | None:
    """A set ``\\{a, b\\}``, bracketed tuple/interval ``(a, b]`` or bare list ``a, b`` / ``a and b``."""
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
        items = [p for p in split_top(inner, ",") if p] if inner.strip() else []
        return Structure("set", tuple(items))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _encloses(s):
        items = split_top(s[1:-1], ",")
        if len(items) >= 2:
            return Structure(s[0] + s[-1], tuple(items))
        return None
    items = split_top(s, ",")
    if len(items) == 1:
        items = split_top(s, " and ")
    if len(items) >= 2 and all(items) and to_number(s) is None:
        return Structure("list", tuple(items))
    return None

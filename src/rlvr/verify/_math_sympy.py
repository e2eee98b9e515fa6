"""CAS side of the math verifier: parse with latex2sympy2_extended / sympy, guard sizes, compare exactly.

Parsing happens with ``sympy.evaluate(False)`` so that nothing is computed before
:func:`too_large` has estimated how many digits evaluating the expression would produce; a tower
such as ``9^{9^{9^9}}`` or ``1000000!`` is refused instead of computed. Equality is exact where it can
be (rationals compare as rationals, so ``1/2004!`` differs from ``1/2006!``). Other closed forms are
equal when sympy's adaptive numeric evaluation of their difference (working precision up to 600
digits) cannot tell it from zero: ``\\pi + 10^{-300}`` differs from ``\\pi``. Expressions with symbols
are compared the same way at three random rational points (falling back to ``simplify`` where the
evaluation is not a finite number).
"""

from __future__ import annotations

import math
import random
import re
from functools import lru_cache

import sympy
from latex2sympy2_extended import latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig
from latex2sympy2_extended.math_normalization import NormalizationConfig
from sympy.parsing.sympy_parser import (
    TokenError,
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

MAX_DIGITS = 100_000  # refuse to evaluate anything whose value would need more decimal digits
# The LaTeX grammar (ANTLR) can take seconds on long or deeply nested input; such answers are refused.
MAX_LATEX_CHARS = 400
MAX_NESTING = 12
MAX_RELATIONS = 3
PRECISION = 60  # digits asked of a numeric difference
ZERO_DIGITS = 600  # working precision allowed to tell a nonzero difference from zero
ZERO_TOL = sympy.Float(10) ** -500

_NORMALISATION = NormalizationConfig(
    basic_latex=True, units=False, malformed_operators=False, nits=False, boxed="all", equations=False
)
_CONVERSION = ConversionConfig(
    interpret_as_mixed_fractions=False,
    interpret_simple_eq_as_assignment=False,
    interpret_contains_as_eq=True,
    lowercase_symbols=True,
)

# Plain (non-LaTeX) syntax such as "sqrt(2)/2" or "2*x**2": parsed by sympy, but only when every name
# in it is a single letter or one of these (parse_expr evaluates Python; this keeps it to arithmetic).
_PLAIN_NAMES = {
    "sqrt": sympy.sqrt,
    "pi": sympy.pi,
    "e": sympy.E,
    "exp": sympy.exp,
    "log": sympy.log,
    "ln": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "abs": sympy.Abs,
    "oo": sympy.oo,
    "inf": sympy.oo,
}
_PLAIN_CHARS = re.compile(r"[0-9a-zA-Z+\-*/^(). ]+")
_E_NOTATION = re.compile(r"\d[eE][+-]?\d")  # 1e999999999 would be read as a float literal
_LATEX_CMD = re.compile(r"\\([a-zA-Z]+)")
_LATEX_WORDS = {"pi": " pi ", "cdot": "*", "times": "*", "infty": " oo "}
# What parse_expr's generated code may call (besides _PLAIN_NAMES and single-letter symbols).
_SYMPY_CORE = {
    name: getattr(sympy, name)
    for name in ("Integer", "Float", "Rational", "Symbol", "Function", "I", "Add", "Mul", "Pow")
}
_TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)


class TooLarge(ValueError):
    """The answer is too large to evaluate (a value over MAX_DIGITS digits) or too complex to parse
    safely (over MAX_LATEX_CHARS characters, brackets nested deeper than MAX_NESTING, unbalanced)."""


def _latex_to_plain(s: str) -> str | None:
    """The simple arithmetic subset of LaTeX (``\\frac{}{}``, ``\\sqrt{}``, ``\\pi``, ``\\cdot``, ``^{}``) as
    plain syntax for sympy's fast parser; None for anything else (left to latex2sympy2_extended)."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        m = _LATEX_CMD.match(s, i)
        if m and m.group(1) in ("frac", "sqrt"):
            i = m.end()
            args = []
            for _ in range(2 if m.group(1) == "frac" else 1):
                while i < n and s[i] == " ":
                    i += 1
                end = _closing_brace(s, i)
                if end is None:
                    return None  # \frac12 shorthand, \sqrt[3]{...}: not this subset
                inner = _latex_to_plain(s[i + 1 : end])
                if inner is None:
                    return None
                args.append(inner)
                i = end + 1
            out.append(f"(({args[0]})/({args[1]}))" if m.group(1) == "frac" else f"sqrt({args[0]})")
        elif m and m.group(1) in _LATEX_WORDS:
            out.append(_LATEX_WORDS[m.group(1)])
            i = m.end()
        elif s[i] == "\\":
            return None
        else:
            out.append({"{": "(", "}": ")"}.get(s[i], s[i]))
            i += 1
    return "".join(out)


def _closing_brace(s: str, i: int) -> int | None:
    if i >= len(s) or s[i] != "{":
        return None
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def _parse_plain(s: str) -> sympy.Basic | None:
    """Parse arithmetic in plain syntax (``sqrt(2)/2``, ``2*x**2``) or the simple LaTeX subset with
    sympy's parser, which is far faster than the LaTeX grammar. Only whitelisted names are allowed."""
    plain = _latex_to_plain(s) if ("\\" in s or "{" in s) else s
    if plain is None or not _PLAIN_CHARS.fullmatch(plain) or _E_NOTATION.search(plain):
        return None
    names = set(re.findall(r"[a-zA-Z]+", plain))
    if any(len(n) > 1 and n not in _PLAIN_NAMES for n in names):
        return None
    local = {n: sympy.Symbol(n.lower()) for n in names if len(n) == 1 and n not in _PLAIN_NAMES}
    local.update({k: v for k, v in _PLAIN_NAMES.items() if k in names})
    try:
        return parse_expr(
            plain,
            local_dict=local,
            global_dict={"__builtins__": {}, **_SYMPY_CORE},
            transformations=_TRANSFORMS,
            evaluate=False,
        )
    except (SyntaxError, TypeError, ValueError, TokenError):
        return None


@lru_cache(maxsize=4096)
def parse(s: str) -> sympy.Basic:
    """Unevaluated sympy object for a LaTeX (or plain) answer; raises on failure or if too large."""
    expr = _parse_plain(s)
    if expr is None:
        _check_latex_complexity(s)
        try:
            with sympy.evaluate(False):
                expr = latex2sympy(s, normalization_config=_NORMALISATION, conversion_config=_CONVERSION)
        except TypeError:
            # A few constructs (unions of infinite intervals) need evaluation to build; the size guard
            # cannot run first here, which the worker's hard time limit covers.
            expr = latex2sympy(s, normalization_config=_NORMALISATION, conversion_config=_CONVERSION)
    if isinstance(expr, (list, tuple)):
        expr = sympy.Tuple(*expr)
    if isinstance(expr, sympy.Basic) and too_large(expr):
        raise TooLarge(f"evaluating {s[:60]!r} would need more than {MAX_DIGITS} digits")
    return expr


def _check_latex_complexity(s: str) -> None:
    if len(s) > MAX_LATEX_CHARS:
        raise TooLarge(f"answer too long for the LaTeX parser ({len(s)} > {MAX_LATEX_CHARS} chars)")
    depth = deepest = 0
    for c in s:
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                break
    if depth != 0:
        raise TooLarge("unbalanced brackets")
    if deepest > MAX_NESTING:
        raise TooLarge(f"brackets nested deeper than {MAX_NESTING}")
    if sum(s.count(op) for op in ("=", "<", ">", "\\le", "\\ge", "\\ne")) > MAX_RELATIONS:
        raise TooLarge(f"more than {MAX_RELATIONS} relations")


def _log10_int(n: int) -> float:
    n = abs(n)
    if n == 0:
        return 0.0
    bits = n.bit_length()
    return math.log10(n) if bits < 1000 else bits * 0.30103


def _log10_float(f: sympy.Float) -> float:
    """|log10| of a float's magnitude, from its binary exponent (no big-number arithmetic)."""
    _, mantissa, exponent, bits = f._mpf_
    return abs(exponent + bits) * 0.30103 if mantissa else 0.0


def _log10_value(e: sympy.Basic) -> float:
    """log10 of an upper bound on |e| for the numeric parts of ``e`` (symbols count as 1)."""
    if e.is_Rational:
        return max(_log10_int(int(e.p)), _log10_int(int(e.q)))
    if e.is_Float:
        return _log10_float(e)
    if e.is_NumberSymbol:  # pi, E, ...
        return abs(math.log10(float(e)))
    if e.is_Pow:
        base, exp = e.args
        lb, le = _log10_value(base), _log10_value(exp)
        if le > 15:
            return math.inf if lb > 0 else 0.0
        return max(lb, 0.30103) * 10**le  # a base below 2 counts as 2; below 1 it only shrinks
    if isinstance(e, (sympy.factorial, sympy.gamma, sympy.factorial2, sympy.subfactorial)):
        ln = _log10_value(e.args[0])
        if ln > 15:
            return math.inf
        n = 10**ln
        return n * max(ln, 1.0)
    if isinstance(e, sympy.exp):
        le = _log10_value(e.args[0])
        return math.inf if le > 15 else 0.4343 * 10**le
    if isinstance(e, sympy.binomial):
        return _log10_value(sympy.factorial(e.args[0], evaluate=False))
    if isinstance(e, sympy.Mul):
        return sum(_log10_value(a) for a in e.args)
    if not e.args:
        return 0.0
    return max(_log10_value(a) for a in e.args) + math.log10(len(e.args) + 1)


def too_large(expr: sympy.Basic) -> bool:
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Basic) and node.args and _log10_value(node) > MAX_DIGITS:
            return True
    return False


def evaluate(expr: sympy.Basic) -> sympy.Basic:
    """Evaluate an unevaluated parse; decimals become exact rationals (0.33 -> 33/100)."""
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(evaluate)
    floats = {f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float) if _log10_float(f) < 1000}
    if floats:
        expr = expr.xreplace(floats)
    return expr.doit() if hasattr(expr, "doit") else expr


def equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    """Mathematical equality of two evaluated answers (expressions, equations, sets, tuples, matrices)."""
    if a == b:
        return True
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        if not (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)) or a.shape != b.shape:
            return False
        return all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, sympy.Tuple) or isinstance(b, sympy.Tuple):
        return (
            isinstance(a, sympy.Tuple)
            and isinstance(b, sympy.Tuple)
            and len(a) == len(b)
            and all(equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
        da, db = a.lhs - a.rhs, b.lhs - b.rhs
        return expr_equal(da, db) or expr_equal(da, -db)
    if isinstance(a, sympy.Set) or isinstance(b, sympy.Set):
        return _set_equal(a, b)
    if isinstance(a, sympy.core.relational.Relational) or isinstance(b, sympy.core.relational.Relational):
        return type(a) is type(b) and expr_equal(a.lhs - a.rhs, b.lhs - b.rhs)
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return expr_equal(a, b)
    return False


def _set_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    if not (isinstance(a, sympy.Set) and isinstance(b, sympy.Set)):
        return False
    if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
        if len(a) != len(b):
            return False
        left = list(b.args)
        for x in a.args:
            match = next((j for j, y in enumerate(left) if equal(x, y)), None)
            if match is None:
                return False
            left.pop(match)
        return True
    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        return (
            a.left_open == b.left_open
            and a.right_open == b.right_open
            and equal(a.start, b.start)
            and equal(a.end, b.end)
        )
    return bool(a.symmetric_difference(b) == sympy.EmptySet)


def _is_zero(d: sympy.Expr) -> bool:
    """Exact for rationals; otherwise sympy's adaptive evalf, which keeps raising the working precision
    (up to ZERO_DIGITS digits) until it can tell a nonzero difference from zero."""
    if d.is_Rational:
        return d == 0
    v = d.evalf(PRECISION, maxn=ZERO_DIGITS)
    if not v.is_number or v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise ArithmeticError("not a finite number")
    return bool(v == 0 or abs(v) < ZERO_TOL)


def expr_equal(a: sympy.Expr, b: sympy.Expr) -> bool:
    if a == b:
        return True
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    try:
        if not symbols:
            return _is_zero(a - b)
        rng = random.Random(0)
        for _ in range(3):
            point = {s: sympy.Rational(rng.randint(51, 249), 100) for s in symbols}
            if not _is_zero(_at(a, point) - _at(b, point)):
                return False
        return True
    except TooLarge:
        raise
    except (ArithmeticError, TypeError, ValueError):
        return sympy.simplify(a - b) == 0


def _at(e: sympy.Expr, point: dict) -> sympy.Expr:
    """``e`` at ``point``, refused when the value would be too large (``x^{x^{x^x}}`` at x = 2.3)."""
    with sympy.evaluate(False):
        e = e.xreplace(point)
    if too_large(e):
        raise TooLarge("the answer grows too large to evaluate at sample points")
    return e.doit()

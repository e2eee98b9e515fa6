"""Offline sentence splitting and word tokenization that reproduce IFEval's counts on ordinary English.

The reference IFEval grader counts sentences with NLTK's pre-trained Punkt model (``punkt/english``) and
tokenizes words for the capital-word check with ``nltk.word_tokenize`` (Punkt sentences, then the
Penn Treebank rules). The Punkt model is a download, so this module re-implements both:

* :func:`split_sentences` follows the Punkt algorithm (Kiss & Strunk, 2006) as NLTK applies it:
  candidate ends at ``.``, ``?`` and ``!`` followed by whitespace and a token or by closing punctuation;
  a token ending in a period is a sentence break unless it is a known abbreviation; abbreviations,
  ellipses, initials and numbers are then re-examined from the case of the next word; closing quotes
  and brackets are moved back to the sentence they close. What the trained model learned from its
  corpus (abbreviation types, frequent sentence starters, each word's orthographic history,
  collocations) is replaced by the fixed lists below, so texts that hinge on a rare abbreviation or on
  a capitalised word after an abbreviation can split differently from the reference.
* :func:`word_tokenize` applies the Treebank rules (punctuation, brackets, quotes, clitics such as
  ``n't`` and ``'s``, ``cannot``/``gonna``) to each sentence.
* :func:`count_words` is the reference's ``\\w+`` tokenizer exactly.

Every regular expression here runs in time linear in the text (no nested or overlapping repetition),
so megabyte inputs cannot stall the grader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Abbreviations (lower case, without the final period) that do not end a sentence by themselves.
ABBREVIATIONS = frozenset(
    """
    mr mrs ms messrs mme dr prof rev hon gen gov sen rep col lt capt sgt maj adm cmdr cpl supt
    st jr sr inc co corp ltd bros cos assn dept univ
    jan feb apr jun jul aug sep sept oct nov dec
    e.g i.e etc vs viz cf al approx ca
    u.s u.k u.n u.s.a a.m p.m ph.d m.d b.a m.a b.s d.c n.y n.j l.a
    ala ariz calif colo conn fla kan kans ky md mich minn mont neb nev okla tenn tex va vt wis wyo
    ft mt ave blvd vol vols pp eds figs nos est govt
    """.split()
)

# Words that, capitalised after an abbreviation, an ellipsis or an initial, start a new sentence.
SENTENCE_STARTERS = frozenset(
    """
    a an the this that these those there here it its he she they we i you his her their our my your
    but and or so yet however although though because since while when where why how what which who
    if then thus hence also moreover furthermore meanwhile nevertheless instead still finally first
    in on at for from with by after before during as to of no not yes some many most all each every
    one another both either neither such other let please now today later once
    """.split()
)

_SENT_END = ".?!"
_NON_WORD = r"(?:[)\";}\]\*:@\'\({\[!?])"  # characters that cannot be inside a word
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"  # dashes and ellipses
_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"

# A possible sentence end: the end character, then closing punctuation or whitespace and a token.
_END_CONTEXT = re.compile(rf"[.?!](?=(?P<after>{_NON_WORD}|\s+(?P<next>\S+)))")
_PUNKT_WORD = re.compile(
    rf"""(
        {_MULTI_CHAR}
        |
        (?={_WORD_START})\S+?
        (?=\s|$|{_NON_WORD}|{_MULTI_CHAR}|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))
        |
        \S
    )""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
_INITIAL = re.compile(r"[^\W\d]\.$")
_ELLIPSIS = re.compile(r"\.\.+$")
_REALIGN = re.compile(r"[\"\')\]}]+?(?:\s+|(?=--)|$)", re.MULTILINE)


@dataclass
class _Token:
    text: str
    sentbreak: bool = False
    abbr: bool = False
    ellipsis: bool = False

    @property
    def bare(self) -> str:
        """Lower case, without one trailing period."""
        low = self.text.lower()
        return low[:-1] if len(low) > 1 and low.endswith(".") else low


def _annotate(tokens: list[_Token]) -> None:
    """Mark sentence breaks: first from each token alone, then from the token that follows it."""
    for tok in tokens:
        t = tok.text
        if t in _SENT_END:
            tok.sentbreak = True
        elif _ELLIPSIS.match(t):
            tok.ellipsis = True
        elif t.endswith(".") and not t.endswith(".."):
            stem = t[:-1].lower()
            if stem in ABBREVIATIONS or stem.split("-")[-1] in ABBREVIATIONS:
                tok.abbr = True
            else:
                tok.sentbreak = True
    for tok, nxt in zip(tokens, tokens[1:], strict=False):
        if not tok.text.endswith("."):
            continue
        starts = _starts_sentence(nxt)
        is_initial = bool(_INITIAL.match(tok.text))
        if (tok.abbr or tok.ellipsis) and not is_initial:
            if starts:
                tok.sentbreak = True
        elif is_initial or _NUMBER.match(tok.text.lower()):
            # Initials and numbers end a sentence only before a word that looks like a sentence start.
            lower_next = nxt.text[:1].islower() or nxt.text in ";:,.!?"
            if lower_next or (is_initial and nxt.text[:1].isupper() and not starts):
                tok.sentbreak, tok.abbr = False, True


def _starts_sentence(tok: _Token) -> bool:
    """Orthographic evidence that ``tok`` begins a sentence: a capitalised common word."""
    return tok.text[:1].isupper() and tok.bare in SENTENCE_STARTERS


def _contains_break(context: str) -> bool:
    """True when some token of ``context`` other than the last is a sentence break."""
    tokens = [_Token(m) for m in _PUNKT_WORD.findall(context)]
    _annotate(tokens)
    return any(t.sentbreak for t in tokens[:-1])


def _end_contexts(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Candidate ends with their context (the word before, the end character, what follows).

    Two candidates inside one word (``?!``, ``??``) are judged once, at the later one.
    """
    prev: re.Match[str] | None = None
    prev_start = prev_stop = 0
    for m in _END_CONTEXT.finditer(text):
        before = text[prev_stop : m.start()]
        space = max(before.rfind(c) for c in " \t\n\r\f\v")
        start = prev_stop + space + 1 if space > 0 else prev_start
        if prev is not None and prev_stop <= start:
            yield prev, text[prev_start:prev_stop] + prev.group() + prev.group("after")
        prev, prev_start, prev_stop = m, start, m.start()
    if prev is not None:
        yield prev, text[prev_start:prev_stop] + prev.group() + prev.group("after")


def _sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    last = 0
    for m, context in _end_contexts(text):
        if _contains_break(context):
            yield last, m.end()
            last = m.start("next") if m.group("next") else m.end()
    yield last, len(text.rstrip())


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; closing quotes and brackets stay with the sentence they close."""
    spans = list(_sentence_spans(text))
    out: list[str] = []
    shift = 0
    for i, (start, end) in enumerate(spans):
        start += shift
        shift = 0
        if i + 1 < len(spans):
            m = _REALIGN.match(text, spans[i + 1][0], spans[i + 1][1])
            if m:
                end = spans[i + 1][0] + len(m.group().rstrip())
                shift = m.end() - spans[i + 1][0]
        if start < end:
            out.append(text[start:end])
    return out


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    """Runs of word characters (letters, digits, underscore), as the reference counts words."""
    return sum(1 for _ in _WORD.finditer(text))


# Penn Treebank word tokenization rules, applied in order (pattern, replacement).
_TREEBANK_START = [
    (re.compile(r"([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r'^"'), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), r"\1 \2"),
]
_TREEBANK_PUNCT = [
    (re.compile(r"([^\.])(\.)([\]\)}>\"\']*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"([^\.])(\.)([\]\)}>\"\']*)\s*$"), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
    (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> "),
    (re.compile(r"--"), r" -- "),
]
_TREEBANK_END = [
    (re.compile(r"([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(can)(not)\b",
        r"\b(d)('ye)\b",
        r"\b(gim)(me)\b",
        r"\b(gon)(na)\b",
        r"\b(got)(ta)\b",
        r"\b(lem)(me)\b",
        r"\b(more)('n)\b",
        r"\b(wan)(na)(?=\s)",
        r" ('t)(is)\b",
        r" ('t)(was)\b",
    )
]


def _treebank(sentence: str) -> list[str]:
    text = sentence
    for pattern, repl in _TREEBANK_START:
        text = pattern.sub(repl, text)
    for pattern, repl in _TREEBANK_PUNCT:
        text = pattern.sub(repl, text)
    text = " " + text + " "
    for pattern, repl in _TREEBANK_END:
        text = pattern.sub(repl, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """Treebank-style tokens of each sentence (``"DON'T"`` -> ``DO``, ``N'T``; hyphenated words stay whole)."""
    return [tok for sentence in split_sentences(text) for tok in _treebank(sentence)]

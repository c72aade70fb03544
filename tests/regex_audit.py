"""A structural audit of regular expressions: which patterns can take more than linear time.

Python's ``re`` backtracks. A pattern is linear in the length of the text when every start position
costs a bounded number of steps, i.e. when every repetition is bounded (``{0,64}``, not ``*``/``+``).
Two unbounded forms are safe too, both greedy repetitions of a single character class C:

- its continuation, up to the end of the pattern, can never fail (``\\s+``, ``https?://\\S+``): the first
  attempt matches and the scan moves past it, so nothing is tried twice;
- it is anchored at the start of a run of C: right after an item that cannot match a character of C
  (``@[\\w-]+``, ``[.,]\\d+``) or a negative lookbehind that rejects every character of C
  (``(?<![a-z\\d])\\d+``). It is then entered at most once per run and gives back at most the run's
  length, so all runs together cost linear time.

:func:`audit_module` finds every pattern a module uses (compiled patterns held at module level, in
lists, tuples and dicts, and the literal first argument of every ``re.*`` call in its source) and
returns the offending ones; a call whose pattern is neither a literal nor a module-level name
(an f-string, a concatenation built at call time) is an offence too, since it cannot be checked.
"""

from __future__ import annotations

import ast
import inspect
import re
from types import ModuleType

try:  # Python 3.11+
    import re._constants as sre_c  # type: ignore[import-not-found]
    import re._parser as sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_BOUND = 256  # a bounded repetition above this is treated as unbounded
_RE_FUNCS = {"compile", "search", "match", "fullmatch", "sub", "subn", "split", "findall", "finditer"}
_SINGLE = {sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.ANY, sre_c.CATEGORY}
_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT}
_POSSESSIVE = getattr(sre_c, "POSSESSIVE_REPEAT", None)
_FAIL = (sre_c.IN, [])  # a stand-in for "something that can fail"


_ALPHABET = [chr(c) for c in range(0x20, 0x530)] + list("\t\n\r\u00a0\u2009«»№₽–—…\U00017000\u0660\u4e00")


def _char_matches(item, ch: str) -> bool:
    """Whether the single-character item ``(op, av)`` matches ``ch`` (for IN, LITERAL, CATEGORY, ANY)."""
    op, av = item
    if op == sre_c.LITERAL:
        return ord(ch) == av
    if op == sre_c.NOT_LITERAL:
        return ord(ch) != av
    if op == sre_c.ANY:
        return ch != "\n"
    if op == sre_c.CATEGORY:
        return _category(av, ch)
    if op == sre_c.IN:
        negate = bool(av) and av[0][0] == sre_c.NEGATE
        hit = False
        for sub_op, sub_av in av[1:] if negate else av:
            if sub_op == sre_c.RANGE:
                hit = sub_av[0] <= ord(ch) <= sub_av[1]
            elif sub_op in (sre_c.LITERAL, sre_c.CATEGORY):
                hit = _char_matches((sub_op, sub_av), ch)
            if hit:
                break
        return hit != negate
    raise ValueError(op)


def _category(cat, ch: str) -> bool:
    name = str(cat).upper()
    test = (
        ch.isdigit()
        if "DIGIT" in name
        else (ch.isalnum() or ch == "_")
        if "WORD" in name
        else ch.isspace()
        if "SPACE" in name
        else ch == "\n"
        if "LINEBREAK" in name
        else None
    )
    if test is None:
        raise ValueError(cat)
    return (not test) if "NOT" in name else test


def _anchored(items: list, k: int) -> bool:
    """Whether the single-class repetition ``items[k]`` can only start where a run of its class starts."""
    if k == 0:
        return False
    body = list(items[k][1][2])[0]
    op, av = items[k - 1]
    try:
        if op in _SINGLE:
            return not any(_char_matches(body, ch) and _char_matches((op, av), ch) for ch in _ALPHABET)
        if op == sre_c.ASSERT_NOT and av[0] == -1 and len(av[1]) == 1 and av[1][0][0] in _SINGLE:
            guard = av[1][0]
            return all(_char_matches(guard, ch) for ch in _ALPHABET if _char_matches(body, ch))
    except ValueError:
        return False
    return False


def _cannot_fail(items) -> bool:
    """Whether a sequence of parsed items always matches (at least the empty string), wherever it starts."""
    for op, av in items:
        if op in _REPEATS or op == _POSSESSIVE:
            if av[0] != 0:
                return False
        elif op == sre_c.SUBPATTERN:
            if not _cannot_fail(av[-1]):
                return False
        elif op == sre_c.BRANCH:
            if not any(_cannot_fail(branch) for branch in av[1]):
                return False
        else:  # a character, an anchor, a lookaround, a backreference: each can fail
            return False
    return True


def _offences(items, suffix: list, out: list[str]) -> None:
    """Unbounded repetitions in ``items`` that are not safe, given what follows them (``suffix``)."""
    items = list(items)
    for k, (op, av) in enumerate(items):
        rest = items[k + 1 :] + suffix
        if op in _REPEATS or op == _POSSESSIVE:
            lo, hi, body = av
            body = list(body)
            unbounded = hi == sre_c.MAXREPEAT or hi > MAX_BOUND
            if unbounded:
                single = len(body) == 1 and body[0][0] in _SINGLE
                safe = op == sre_c.MAX_REPEAT and single and (_cannot_fail(rest) or _anchored(items, k))
                if not safe and op != _POSSESSIVE:
                    out.append(
                        f"unbounded repetition {'{'}{lo},{'' if hi == sre_c.MAXREPEAT else hi}{'}'} "
                        f"followed by something that can fail"
                    )
            # what follows the body: the rest when it runs at most once, else (conservatively) something that can fail
            _offences(body, rest if hi <= 1 else [_FAIL], out)
        elif op == sre_c.SUBPATTERN:
            _offences(av[-1], rest, out)
        elif op == sre_c.BRANCH:
            for branch in av[1]:
                _offences(branch, rest, out)
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            _offences(av[1], [], out)  # a lookaround is matched on its own


def pattern_offences(pattern: str | re.Pattern, flags: int = 0) -> list[str]:
    if isinstance(pattern, re.Pattern):
        pattern, flags = pattern.pattern, pattern.flags
    out: list[str] = []
    _offences(sre_parse.parse(pattern, flags), [], out)
    return out


def _module_patterns(module: ModuleType) -> list[re.Pattern]:
    found: list[re.Pattern] = []

    def visit(value, depth=0):
        if isinstance(value, re.Pattern):
            found.append(value)
        elif depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                visit(v, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for v in value.values():
                visit(v, depth + 1)

    for name, value in vars(module).items():
        if not name.startswith("__"):
            visit(value)
    return found


def audit_module(module: ModuleType) -> dict[str, list[str]]:
    """``{pattern or call site: [offences]}`` for every unsafe pattern the module uses."""
    problems: dict[str, list[str]] = {}
    for pattern in _module_patterns(module):
        if offences := pattern_offences(pattern):
            problems[pattern.pattern] = offences
    tree = ast.parse(inspect.getsource(module))
    # a re.compile() run at import time leaves its pattern among the module's values, audited above
    at_import = {
        id(node)
        for stmt in tree.body
        if not isinstance(stmt, (ast.FunctionDef, ast.ClassDef))
        for node in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in _RE_FUNCS
            and node.args
        ):
            continue
        arg = node.args[0]
        if node.func.attr == "compile" and id(node) in at_import and not isinstance(arg, ast.Constant):
            continue
        where = f"{module.__name__}:{node.lineno}"
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            flags = 0
            for kw in node.keywords:
                if kw.arg == "flags" and isinstance(kw.value, ast.Attribute):
                    flags |= getattr(re, kw.value.attr, 0)
            if offences := pattern_offences(arg.value, flags):
                problems[f"{where} {arg.value}"] = offences
        elif isinstance(arg, (ast.Name, ast.Attribute)):
            continue  # a pattern object held by the module: audited above
        else:
            problems[f"{where} {ast.unparse(arg)[:80]}"] = ["a pattern built at call time cannot be audited"]
    return problems

"""Checks of option values, written once in the class that reads them and shared by its constructor and the
pre-flight (`vlunet_basicsr.tools.options.checks`).

- Archs and losses: a classmethod ``argument_problems(arguments)`` over the constructor's keyword arguments, which
  the constructor passes to `raise_problems`.
- Datasets and models: ``OPTION_DEFAULTS`` (key -> default, `REQUIRED` for a key that must be given; a model's
  ``train.*``, ``val.*``, ``path.*`` keys dotted), read through `option`; a classmethod ``option_problems``.

Each problem is ``'<key>: <what is wrong>'``. Kinds are strings: ``int``, ``float`` (ints accepted), ``bool``,
``str``, ``dict``, ``list``, ``list[int]``, ``list[float]``, ``list[str]``, ``list[dict]`` and ``any``.
"""
import difflib


class _Required:
    def __repr__(self):
        return 'required'


#: Default of a key that must be given.
REQUIRED = _Required()

_SCALARS = {
    # A whole float is an integer too: BasicSR's files write ``val_freq: !!float 5e3``.
    'int': lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    'float': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    'bool': lambda v: isinstance(v, bool),
    'str': lambda v: isinstance(v, str),
    'dict': lambda v: isinstance(v, dict),
    'any': lambda v: True,
}
_NAMES = {'int': 'an integer', 'float': 'a number', 'bool': 'true or false', 'str': 'a string', 'dict': 'a mapping',
          'any': 'a value'}
_PLURALS = {'int': 'integers', 'float': 'numbers', 'bool': 'booleans', 'str': 'strings', 'dict': 'mappings',
            'any': 'values'}


def element_kind(kind):
    """The kind of each element of a list kind ('any' for ``list``), or None for a scalar kind."""
    if kind == 'list':
        return 'any'
    return kind[5:-1] if kind.startswith('list[') else None


def bounds(minimum=None, maximum=None, multiple=None, multiple_words='multiple of'):
    """The numeric bounds as phrases: '>= 1', '<= 8', '<multiple_words> 2'."""
    phrases = [f'>= {minimum}'] if minimum is not None else []
    if maximum is not None:
        phrases.append(f'<= {maximum}')
    if multiple is not None:
        phrases.append(f'{multiple_words} {multiple}')
    return phrases


def expectation(kind, choices=None, minimum=None, maximum=None, multiple=None, nullable=False, length=None):
    """What a valid value looks like, in words."""
    if choices is not None:
        text = 'one of ' + ', '.join(repr(c) for c in choices)
    elif element_kind(kind) is not None:
        plural = _PLURALS[element_kind(kind)]
        text = f'a list of {length} {plural}' if length else f'a list of {plural}'
    else:
        text = _NAMES[kind]
    phrases = bounds(minimum, maximum, multiple, 'a multiple of')
    if phrases:
        text += ' ' + ' and '.join(phrases)
    return text + (' (or ~)' if nullable else '')


def value_problem(value, kind, choices=None, minimum=None, maximum=None, multiple=None, nullable=False, length=None):
    """None when ``value`` is a valid ``kind`` within the rules, else what is wrong with it (without its key)."""
    expected = expectation(kind, choices, minimum, maximum, multiple, nullable, length)
    if value is None:
        return None if nullable else f'may not be empty; expected {expected}'
    element = element_kind(kind)
    if element is not None:
        if not isinstance(value, (list, tuple)):
            return f'{value!r} is not {expected}'
        if length is not None and len(value) != length:
            return f'{value!r} has {len(value)} entries; expected {expected}'
        values = list(value)
    else:
        element, values = kind, [value]
    for item in values:
        if not _SCALARS[element](item) or (choices is not None and item not in choices):
            return f'{value!r} is not {expected}'
        if element in ('int', 'float') and ((minimum is not None and item < minimum)
                                            or (maximum is not None and item > maximum)):
            return f'{value!r} is out of range; expected {expected}'
        if multiple is not None and element == 'int' and item % multiple:
            return f'{value!r} is not {expected}'
    return None


def expect(key, value, kind, **rules):
    """``'<key>: <problem>'`` when ``value`` breaks the rules of `value_problem`, else None."""
    problem = value_problem(value, kind, **rules)
    return None if problem is None else f'{key}: {problem}'


def problems_of(*problems):
    """The problems that are not None, flattened one level (a check may give a list)."""
    found = []
    for problem in problems:
        if isinstance(problem, (list, tuple)):
            found += [p for p in problem if p is not None]
        elif problem is not None:
            found.append(problem)
    return found


def raise_problems(owner, problems):
    """Raise ValueError naming ``owner`` and every problem (``'VLUNet: dim: 8 is out of range; ...'``), if any."""
    if problems:
        raise ValueError(f'{owner}: ' + '; '.join(problems))


def located(where, problems):
    """Problems with their YAML location in front: ``'datasets.train.gt_size: ...'``."""
    return [f'{where}.{problem}' if where else problem for problem in problems]


def closest_hint(key, valid):
    """`` Did you mean 'x'?`` for the valid key closest to ``key``, or ''."""
    close = difflib.get_close_matches(str(key), sorted(str(v) for v in valid), n=1)
    return f" Did you mean '{close[0]}'?" if close else ''


def unknown_key_problems(entry, known, where, owner):
    """One problem per key of ``entry`` that is not in ``known``, with the closest known key as a hint."""
    return [f"{where + ': ' if where else ''}unknown option '{key}' for {owner}.{closest_hint(key, known)}"
            for key in sorted(set(entry) - set(known), key=str)]


def missing_key_problems(entry, defaults, where, owner):
    """One problem per key that ``defaults`` marks `REQUIRED` and ``entry`` lacks."""
    return [f'{where + "." if where else ""}{key}: required by {owner}' for key, default in defaults.items()
            if default is REQUIRED and '.' not in key and key not in entry]


def option(opt, defaults, key):
    """The value of ``key`` (``section.key`` for a model's ``train``/``val``/``path`` keys) in BasicSR's option dict,
    or its default from ``defaults`` (a class's ``OPTION_DEFAULTS``); None for an absent required key."""
    section, _, name = key.rpartition('.')
    entry = (opt.get(section) or {}) if section else opt
    default = defaults[key]
    return entry.get(name, None if default is REQUIRED else default)

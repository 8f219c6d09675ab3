"""Declared option keys: each key of a class's YAML options is declared once, with its type, default and range.

A class of ours, or of another plugin, carries ``OPTIONS = (Option(...), ...)``. The option checks (`vlunet_basicsr.tools.options`) read
these declarations to name misspelled keys and wrong values before anything is built; `scripts/option_reference.py`
writes docs/option_reference.md from them, and the tests compare declarations with constructors and docstrings.

Types are written as strings: ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``dict``, ``list``,
``list[int]``, ``list[float]``, ``list[str]``, ``list[dict]`` and ``any``.
"""
import difflib
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Option:
    """One option key.

    Args:
        name (str): The key; for a model, ``section.key`` for keys under ``train``, ``val`` or ``path``.
        type (str): See the module docstring.
        default (object): Value when the key is absent; `REQUIRED` when it must be given. Default: None.
        doc (str): One line for the docs.
        choices (tuple | None): Allowed values. Default: None (any of the type).
        minimum (float | None): Smallest allowed number (each element for lists). Default: None.
        maximum (float | None): Largest allowed number (each element for lists). Default: None.
        multiple (int | None): Integers only: each value must be a multiple of it. Default: None.
        nullable (bool): Whether ``~`` (None) is allowed; always true when the default is None. Default: False.
        length (int | None): Required length of a list. Default: None.
        entries (tuple[Option] | None): For ``list[dict]``: the declarations of each mapping. Default: None.
        entry_owner (str): Who reads each mapping of ``entries``, for messages. Default: 'an entry'.
    """

    name: str
    type: str
    default: object = None
    doc: str = ''
    choices: tuple = None
    minimum: float = None
    maximum: float = None
    multiple: int = None
    nullable: bool = False
    length: int = None
    entries: tuple = None
    entry_owner: str = 'an entry'

    def __post_init__(self):
        element = self.type[5:-1] if self.type.startswith('list[') else None
        if self.type not in _SCALARS and self.type != 'list' and element not in _SCALARS:
            raise ValueError(f'Option {self.name}: unknown type {self.type!r}')

    @property
    def key(self):
        """The key within its section (``grad_clip_norm`` for ``train.grad_clip_norm``)."""
        return self.name.rsplit('.', 1)[-1]

    @property
    def section(self):
        """``train``, ``val``, ``path`` or '' (top level, or the whole entry of an arch, loss or dataset)."""
        return self.name.rsplit('.', 1)[0] if '.' in self.name else ''

    def bounds(self, multiple_words='multiple of'):
        """The numeric bounds as phrases: '>= 1', '<= 8', '<multiple_words> 2'."""
        bounds = [f'>= {self.minimum}'] if self.minimum is not None else []
        if self.maximum is not None:
            bounds.append(f'<= {self.maximum}')
        if self.multiple is not None:
            bounds.append(f'{multiple_words} {self.multiple}')
        return bounds

    def expectation(self):
        """What a valid value looks like, in words."""
        if self.choices is not None:
            text = 'one of ' + ', '.join(repr(c) for c in self.choices)
        elif self.type.startswith('list'):
            element = self.type[5:-1] if self.type != 'list' else 'any'
            plural = {'int': 'integers', 'float': 'numbers', 'bool': 'booleans', 'str': 'strings', 'dict': 'mappings',
                      'any': 'values'}[element]
            text = f'a list of {self.length} {plural}' if self.length else f'a list of {plural}'
        else:
            text = _NAMES[self.type]
        bounds = self.bounds('a multiple of')
        if bounds:
            text += ' ' + ' and '.join(bounds)
        if self.nullable or self.default is None:
            text += ' (or ~)'
        return text

    def problem(self, value):
        """None when ``value`` is valid for this key, else what is wrong with it (without the key's name)."""
        if value is None:
            return None if self.nullable or self.default is None else f'may not be empty; expected {self.expectation()}'
        if self.type.startswith('list'):
            if not isinstance(value, (list, tuple)):
                return f'{value!r} is not {self.expectation()}'
            if self.length is not None and len(value) != self.length:
                return f'{value!r} has {len(value)} entries; expected {self.expectation()}'
            element = self.type[5:-1] if self.type != 'list' else 'any'
            values = list(value)
        else:
            element, values = self.type, [value]
        for item in values:
            if not _SCALARS[element](item) or (self.choices is not None and item not in self.choices):
                return f'{value!r} is not {self.expectation()}'
            if element in ('int', 'float') and ((self.minimum is not None and item < self.minimum)
                                                or (self.maximum is not None and item > self.maximum)):
                return f'{value!r} is out of range; expected {self.expectation()}'
            if self.multiple is not None and element == 'int' and item % self.multiple:
                return f'{value!r} is not {self.expectation()}'
        return None


    def normalised(self, value):
        """A valid ``value`` as the key's type: whole floats given for integers become ints."""
        if self.type == 'int' and isinstance(value, float):
            return int(value)
        if self.type == 'list[int]' and isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        return value


def closest_hint(key, valid):
    """`` Did you mean 'x'?`` for the valid key closest to ``key``, or ''."""
    close = difflib.get_close_matches(str(key), sorted(valid), n=1)
    return f" Did you mean '{close[0]}'?" if close else ''


def check_entry(entry, options, where, owner, extra_keys=(), unknown=True):
    """Problems of one mapping of options against declarations: unknown keys, missing and invalid values.

    Valid values are normalised in place (`Option.normalised`).

    Args:
        entry (dict): The YAML mapping (e.g. ``network_g`` or one dataset).
        options (Iterable[Option]): Declarations of this mapping's keys (their section part is ignored).
        where (str): YAML location of ``entry``, e.g. ``network_g`` ('' for the top level).
        owner (str): Who reads the keys, for messages (a class name, or 'a source').
        extra_keys (Iterable[str]): Keys read by others (e.g. BasicSR's data loader), accepted as they are.
        unknown (bool): Report keys that nothing declares. Default: True.

    Returns:
        list[str]: One line per problem.
    """
    def at(key):
        return f'{where}.{key}' if where else str(key)

    if not isinstance(entry, dict):
        return [f'{where}: expected a mapping of options for {owner}, got {entry!r}']
    declared = {option.key: option for option in options}
    problems = []
    for key in sorted(set(entry) - set(declared) - set(extra_keys) if unknown else (), key=str):
        problems.append(f"{where + ': ' if where else ''}unknown option '{key}' for {owner}."
                        f'{closest_hint(key, set(declared) | set(extra_keys))}')
    for key, option in declared.items():
        if key not in entry:
            if option.default is REQUIRED:
                problems.append(f'{at(key)}: required by {owner} ({option.doc or option.expectation()})')
            continue
        problem = option.problem(entry[key])
        if problem is not None:
            problems.append(f'{at(key)}: {problem}')
            continue
        entry[key] = option.normalised(entry[key])
        if option.entries is not None and entry[key] is not None:
            for i, item in enumerate(entry[key]):
                problems += check_entry(item, option.entries, f'{at(key)}[{i}]', option.entry_owner)
    return problems


def section(options, name):
    """The declarations of one section (``train``, ``val``, ``path``; '' for the top level or a whole entry)."""
    return tuple(option for option in options if option.section == name)

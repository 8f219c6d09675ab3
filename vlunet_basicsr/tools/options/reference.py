"""docs/option_reference.md, written from the code (``python scripts/option_reference.py``): archs, losses and
schedulers from their constructor's signature and docstring ``Args``; datasets and models from ``OPTION_DEFAULTS``
and their docstring; BasicSR's keys from `spec`.

A test compares the committed page with `render_reference`, so the docs cannot drift from the code.
"""
import inspect
import re
import sys

from vlunet_basicsr.tools.options import spec
from vlunet_basicsr.tools.options.spec import REQUIRED

HEADER = """# Option reference

Every YAML key that this package's classes and BasicSR's pipeline read, with its type and default. Generated
from the code by `python scripts/option_reference.py`: archs, losses and schedulers from their constructor's
signature and docstring, datasets and models from their `OPTION_DEFAULTS` and docstring, BasicSR's keys from
`vlunet_basicsr/tools/options/spec.py` (with their allowed values). `basicsr train|test` checks every
option file against them before anything is built, values by each class's own check (see [options.md](options.md)).
"""


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _default(option):
    if option.default is REQUIRED:
        return '**required**'
    if option.default is None:
        return '~'
    return f'`{option.default!r}`'


def _allowed(option):
    if option.choices is not None:
        return ', '.join(f'`{c}`' for c in option.choices)
    bounds = option.bounds()
    if option.length is not None:
        bounds.append(f'{option.length} entries')
    return ', '.join(bounds)


def _table(options, prefix=''):
    lines = ['| key | type | default | allowed | meaning |', '| --- | --- | --- | --- | --- |']
    for option in options:
        lines.append(f'| `{prefix}{option.name}` | {option.type} | {_cell(_default(option))} | '
                     f'{_cell(_allowed(option))} | {_cell(option.doc)} |')
        if option.entries is not None:
            lines += [f'| `{prefix}{option.name}[].{entry.name}` | {entry.type} | {_cell(_default(entry))} | '
                      f'{_cell(_allowed(entry))} | {_cell(entry.doc)} |' for entry in option.entries]
    return lines


_DOC_LINE = re.compile(r'^(\s+)(?:``)?([A-Za-z_][\w.]*)(?:``)? \(([^)]*)\):\s*(.*)$')


def documented_keys(cls):
    """``{key: (type, text)}`` of the ``name (type): text`` lines of the docstrings of ``cls`` and its bases of this
    package (the class's own first), then of the other classes of its module (e.g. `ImageSource` for the keys a
    dataset takes from it), continuation lines joined."""
    found = {}
    neighbours = [c for c in vars(sys.modules[cls.__module__]).values() if isinstance(c, type)]
    for owner in list(cls.__mro__) + neighbours:
        if not owner.__module__.startswith('vlunet_basicsr.'):
            continue
        lines = (inspect.getdoc(owner) or '').splitlines()
        for i, line in enumerate(lines):
            match = _DOC_LINE.match(line)
            if not match or match.group(2) in found:
                continue
            indent, text = len(match.group(1)), [match.group(4)]
            for following in lines[i + 1:]:
                if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                    break
                text.append(following.strip())
            found[match.group(2)] = (match.group(3), ' '.join(text))
    return found


def class_keys(cls):
    """``[(key, type, default, text)]`` of a class's YAML keys: its constructor's keyword arguments (arch, loss,
    scheduler) or its ``OPTION_DEFAULTS`` (dataset, model)."""
    documented = documented_keys(cls)
    defaults = getattr(cls, 'OPTION_DEFAULTS', None)
    if defaults is None:
        parameters = inspect.signature(cls).parameters.values()
        defaults = {p.name: REQUIRED if p.default is p.empty else p.default for p in parameters
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ('optimizer', 'last_epoch')}
    return [(key, *documented.get(key, documented.get(key.rsplit('.', 1)[-1], ('', ''))), default)
            for key, default in defaults.items()]


def _key_table(keys):
    lines = ['| key | type | default | meaning |', '| --- | --- | --- | --- |']
    for key, kind, text, default in keys:
        default = '**required**' if default is REQUIRED else '~' if default is None else f'`{default!r}`'
        lines.append(f'| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(text)} |')
    return lines


def declaring_classes():
    """(registry name, YAML place, class) for every registered class of ours, sorted by registry and name."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    from vlunet_basicsr.models.lr_scheduler import SCHEDULER_REGISTRY
    places = [('model', 'top level, train, val, path', MODEL_REGISTRY), ('arch', 'network_*', ARCH_REGISTRY),
              ('dataset', 'datasets.<phase>', DATASET_REGISTRY), ('loss', 'train.<name>_opt', LOSS_REGISTRY),
              ('scheduler', 'train.scheduler', SCHEDULER_REGISTRY)]
    found = []
    for kind, place, registry in places:
        for name in sorted(registry.keys()):
            cls = registry.get(name)
            if isinstance(cls, type) and cls.__module__.startswith('vlunet_basicsr.'):
                found.append((kind, place, cls))
    return found


def render_reference():
    """The text of docs/option_reference.md."""
    lines = [HEADER]
    for kind, place, cls in declaring_classes():
        lines += [f'## {cls.__name__} ({kind}, `{place}`)', '']
        lines += _key_table(class_keys(cls)) + ['']
    lines += ["## BasicSR's own keys", '', 'Read by the train/test pipelines, the data loader builder and '
              '`BaseModel`/`SRModel`, for every model.', '']
    lines += _table(spec.TOP_LEVEL) + ['']
    lines += ['Per network `<label>` (`g` for `network_g`):', ''] + _table(spec.PATH_PER_NETWORK, '') + ['']
    lines += _table(spec.TRAIN + spec.VAL + spec.PATH) + ['']
    lines += ['Every `datasets.<phase>` entry:', ''] + _table(spec.DATASET_LOADER) + ['']
    lines += ['`logger`:', ''] + _table(spec.LOGGER) + ['', '`dist_params`:', '']
    lines += _table(spec.DIST_PARAMS) + ['']
    lines += ['`train.optim_<label>`: `type` (any `torch.optim` optimizer) and that optimizer\'s own arguments; '
              '`lr` is required and must be a number >= 0, numeric arguments must be numbers.', '']
    return '\n'.join(lines)

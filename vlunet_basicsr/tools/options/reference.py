"""docs/option_reference.md, written from the declarations (``python scripts/option_reference.py``).

A test compares the committed page with `render_reference`, so the docs cannot drift from the code.
"""
from vlunet_basicsr.tools.options import basicsr_keys
from vlunet_basicsr.tools.options.spec import REQUIRED

HEADER = """# Option reference

Every YAML key that this package's classes and BasicSR's pipeline read, with its type, default and allowed
values. Generated from the declarations in the code (`OPTIONS` of each class, `vlunet_basicsr/tools/options/basicsr_keys.py`)
by `python scripts/option_reference.py`; `basicsr train|test` checks every option file against them before
anything is built (see [options.md](options.md)).
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
        lines += _table(cls.OPTIONS) + ['']
    lines += ["## BasicSR's own keys", '', 'Read by the train/test pipelines, the data loader builder and '
              '`BaseModel`/`SRModel`, for every model.', '']
    lines += _table(basicsr_keys.TOP_LEVEL) + ['']
    lines += ['Per network `<label>` (`g` for `network_g`):', ''] + _table(basicsr_keys.PATH_PER_NETWORK, '') + ['']
    lines += _table(basicsr_keys.TRAIN + basicsr_keys.VAL + basicsr_keys.PATH) + ['']
    lines += ['Every `datasets.<phase>` entry:', ''] + _table(basicsr_keys.DATASET_LOADER) + ['']
    lines += ['`logger`:', ''] + _table(basicsr_keys.LOGGER) + ['', '`dist_params`:', '']
    lines += _table(basicsr_keys.DIST_PARAMS) + ['']
    lines += ['`train.optim_<label>`: `type` (any `torch.optim` optimizer) and that optimizer\'s own arguments; '
              '`lr` is required and must be a number >= 0, numeric arguments must be numbers.', '']
    return '\n'.join(lines)

"""The degradation prompt lists, in label order (label i <-> prompt i), each with the names of its labels.

Two sets:

- ``release``: the seven prompts of the VLU-Net release's adapter tuning (`DEGRADATION_PROMPTS`).
- ``cdd11``: VL-UR's scene classifier prompts, "The image has (type) degradation" for the paper's eleven
  types in the paper's order (its Table I columns I-XI), `CDD11_PROMPTS`; the label names `CDD11_TYPES` are the
  folder names of the public CDD-11 release (OneRestore's), so ``haze + low`` is the folder ``low_haze``.

A YAML names a set by its key here (``prompts: cdd11``, resolved by `resolve_prompts`) or lists the prompts.
"""
from collections import namedtuple

DEGRADATION_PROMPTS = (
    'image with noise',  # 0: Gaussian noise, sigma 15
    'image with many noise',  # 1: sigma 25
    'image with large amount of noise',  # 2: sigma 50
    'image with haze',  # 3
    'image with rain',  # 4
    'image with blur',  # 5
    'image with low light',  # 6
)
#: Names of the release's labels (as in options/train_clip_adapter_nhrbl.yml's class_names).
RELEASE_LABEL_NAMES = ('noise15', 'noise25', 'noise50', 'haze', 'rain', 'blur', 'low light')

#: The CDD-11 folder of each VL-UR label (label i <-> CDD11_PROMPTS[i]); the clean images are in ``clear/``.
CDD11_TYPES = ('haze', 'low', 'rain', 'snow', 'low_haze', 'haze_rain', 'haze_snow', 'low_rain', 'low_snow',
               'low_haze_rain', 'low_haze_snow')
#: The paper's words for each type, in the same order.
CDD11_TYPE_WORDS = ('haze', 'low light', 'rain', 'snow', 'haze + low', 'haze + rain', 'haze + snow', 'low + rain',
                    'low + snow', 'haze + low + rain', 'haze + low + snow')
CDD11_PROMPTS = tuple(f'The image has {words} degradation' for words in CDD11_TYPE_WORDS)

PromptSet = namedtuple('PromptSet', ['names', 'prompts'])

#: Every prompt set by the name a YAML uses.
PROMPT_SETS = {
    'release': PromptSet(RELEASE_LABEL_NAMES, DEGRADATION_PROMPTS),
    'cdd11': PromptSet(CDD11_TYPES, CDD11_PROMPTS),
}


def prompt_set(name, where='prompts'):
    """The `PromptSet` called ``name``; a ValueError naming ``where`` and the known sets otherwise."""
    if not isinstance(name, str) or name not in PROMPT_SETS:
        raise ValueError(f'{where}: unknown prompt set {name!r}; known: {", ".join(sorted(PROMPT_SETS))}')
    return PROMPT_SETS[name]


def resolve_prompts(value, where='prompts', default='release'):
    """The prompt list a YAML value stands for: a set's name, a list of prompts, or None (``default``'s set).

    Args:
        value (str | list[str] | None): ``'cdd11'``, ``'release'``, or the prompts themselves in label order.
        where (str): YAML location of the value, for errors. Default: 'prompts'.
        default (str): The set used when ``value`` is None. Default: 'release'.

    Returns:
        list[str]: The prompts in label order.
    """
    if value is None:
        return list(prompt_set(default, where).prompts)
    if isinstance(value, str):
        return list(prompt_set(value, where).prompts)
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, str) and p.strip() for p in value):
        if len(set(value)) != len(value):
            raise ValueError(f'{where}: the prompts must differ from each other, got {list(value)}')
        return list(value)
    raise ValueError(f'{where}: expected the name of a prompt set ({", ".join(sorted(PROMPT_SETS))}) or a '
                     f'non-empty list of prompts, got {value!r}')


def label_names(prompts):
    """The label names of a known prompt set equal to ``prompts`` (e.g. CDD-11's folder names), else ()."""
    for names, known in PROMPT_SETS.values():
        if list(known) == list(prompts):
            return tuple(names)
    return ()


def prompt_label(value, prompts, where='val.degradation_type'):
    """The label (index into ``prompts``) that ``value`` names: a label number, one of the prompts, or the name
    of a label of a known prompt set (``haze_rain`` for CDD-11). A string of digits counts as a number."""
    names = label_names(prompts)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(prompts):
        return value
    if isinstance(value, str) and value in prompts:
        return list(prompts).index(value)
    if isinstance(value, str) and value in names:
        return names.index(value)
    named = f', one of the names {list(names)}' if names else ''
    raise ValueError(f'{where} must be a label 0-{len(prompts) - 1}{named} or one of the prompts {list(prompts)}; '
                     f'got {value!r}')

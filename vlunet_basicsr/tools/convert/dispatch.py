"""The one dispatch of checkpoint conversion: find the file's layout, convert it, check every part against the
network it names, and only then write the parts."""
import copy
import os
import os.path as osp
import shutil
import tempfile

import torch

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.tools.convert.conversion import CHECKPOINT_LAYOUT_REGISTRY
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, atomic_torch_save, load_weights
from vlunet_basicsr.utils.output_names import existing_outputs_problem

_SHOWN = 5


def _first(items):
    more = f' (+{len(items) - _SHOWN} more)' if len(items) > _SHOWN else ''
    return ', '.join(items[:_SHOWN]) + more


def describe(checkpoint):
    """A short account of what a loaded file holds: its first keys (and those of its ``state_dict``)."""
    if not isinstance(checkpoint, dict):
        return f'a {type(checkpoint).__name__}, not a dict'
    text = f'keys like {_first([repr(key) for key in checkpoint])}'
    state = checkpoint.get('state_dict')
    if isinstance(state, dict):
        text += f", with state_dict keys like {_first([repr(key) for key in state])}"
    return text


def find_layout(checkpoint, source):
    """The one registered layout whose ``detect`` accepts ``checkpoint``.

    Raises:
        CheckpointFormatError: No layout, or several, accept it (the message names the known layouts).
    """
    layouts = [layout for _, layout in CHECKPOINT_LAYOUT_REGISTRY]
    found = [layout for layout in layouts if isinstance(checkpoint, dict) and layout.detect(checkpoint)]
    if len(found) == 1:
        return found[0]
    if found:
        names = '; '.join(layout.name for layout in found)
        raise CheckpointFormatError(f'{source}: matches several checkpoint layouts: {names}')
    raise CheckpointFormatError(f'{source}: not a known checkpoint layout: found {describe(checkpoint)}; known: '
                                f"{'; '.join(layout.name for layout in layouts)}")


def _expected_state(part):
    """(state dict of the module ``part`` must load into, its name), or None when the part names none."""
    with torch.device('meta'):  # shapes only: no memory, no initialisation cost
        if part.arch is not None:
            kwargs = copy.deepcopy(part.arch)
            name = kwargs.pop('type')
            return ARCH_REGISTRY.get(name)(**kwargs).state_dict(), name
        if part.module_factory is not None:
            module = part.module_factory()
            return module.state_dict(), type(module).__name__
    return None


def check_part(part, source):
    """Refuse ``part`` unless its ``state_dict`` has exactly the keys and shapes of the network it names.

    Raises:
        CheckpointFormatError: Naming the missing, unexpected and misshapen tensors, or the options that do not
            build the network.
    """
    try:
        expected = _expected_state(part)
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise CheckpointFormatError(f'{source}: cannot build the network of its {part.part} from {part.arch}: '
                                    f'{error}. Nothing was written.') from error
    if expected is None:
        return
    expected, name = expected
    given = part.state_dict
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    misshapen = [f'{key} {tuple(getattr(given[key], "shape", ()))} (the network has {tuple(value.shape)})'
                 for key, value in expected.items()
                 if key in given and tuple(getattr(given[key], 'shape', ())) != tuple(value.shape)]
    problems = [f'{label} {_first(items)}' for label, items in
                (('missing', missing), ('unexpected', unexpected), ('misshapen', misshapen)) if items]
    if problems:
        raise CheckpointFormatError(f"{source}: its {part.part} does not load into {name}: {'; '.join(problems)}. "
                                    'Nothing was written.')


def _write(parts, output_dir, overwrite):
    """Write every part, or none: all go to a staging folder first, then are renamed into place."""
    targets = [osp.join(output_dir, part.filename) for part in parts]
    problem = existing_outputs_problem(targets, overwrite)
    if problem:
        raise FileExistsError(f'{problem} (--output-dir). Nothing was written.')
    created = not osp.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.converting-', dir=output_dir)
    try:
        for part in parts:
            atomic_torch_save(part.payload, osp.join(staging, part.filename))
        for part, target in zip(parts, targets):
            os.replace(osp.join(staging, part.filename), target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return {part.part: target for part, target in zip(parts, targets)}


def convert_loaded_checkpoint(checkpoint, output_dir, source='checkpoint', options=None, overwrite=False):
    """`convert_checkpoint` of a file already loaded (``checkpoint`` is what ``torch.load`` returned)."""
    options = {key: value for key, value in (options or {}).items() if value is not None}
    layout = find_layout(checkpoint, source)
    foreign = sorted(set(options) - set(getattr(layout, 'accepts', ())))
    if foreign:
        flags = ', '.join(f"--{key.replace('_', '-')}" for key in foreign)
        raise CheckpointFormatError(f'{source} is a {layout.name}: {flags} is not for this layout')
    conversion = layout.convert(checkpoint, source, options)
    if not conversion.parts:
        raise CheckpointFormatError(f'{source}: a {layout.name} with nothing to convert in it')
    for part in conversion.parts:
        check_part(part, source)
    conversion.written = _write(conversion.parts, output_dir, overwrite)
    return conversion


def convert_checkpoint(path, output_dir, trust=False, options=None, overwrite=False):
    """Convert a published checkpoint file into the project's files under ``output_dir``.

    Nothing is written unless the file has exactly one known layout and every part holds the keys and shapes of
    the network it names.

    Args:
        path (str): The published file.
        output_dir (str): Created if missing.
        trust (bool): Allow arbitrary unpickling (only for files from a source you trust). Default: False.
        options (dict | None): The layout's options, e.g. ``{'de_dim': 7}``; None values are ignored.
        overwrite (bool): Replace existing output files; otherwise they are refused. Default: False.

    Returns:
        Conversion: Its parts, ``yaml_block`` and ``written`` ({part: path}).

    Raises:
        CheckpointFormatError: Unreadable, unknown layout, or a part that does not fit its network.
        FileExistsError: An output file exists and ``overwrite`` is False.
    """
    return convert_loaded_checkpoint(load_weights(path, trust), output_dir, path, options, overwrite)

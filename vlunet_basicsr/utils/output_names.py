"""Where ``basicsr restore`` writes each result: decided for all inputs before anything is written.

Rule, in the sorted order of the inputs:
1. An input's result is ``<stem>.png``; when several inputs share a stem (``b.jpg``, ``b.png``), each of
   them gets ``<stem>_<ext>.png`` (``b_jpg.png``, ``b_png.png``).
2. No two results share a name (compared case-insensitively, as some file systems do): a name already given
   to an earlier input becomes ``<name>_2.png``, ``<name>_3.png``, ... (the first that is neither another result
   nor an input file), and the renaming is reported.
3. No result (nor, with ``--explain``, its extra files) may replace an input file, whichever input: such an
   input is refused with a message naming both files, and the others are still restored.

The overwrite policy of every command that writes a path the user names (``basicsr export -o``, the converter's
files, ``basicsr compare -o``, ``prepare_datasets.py --output``): an existing target is refused by name unless
``--overwrite`` is given (`existing_outputs_problem`).
"""
import os
import os.path as osp
from collections import namedtuple

#: The ``--explain`` figures of a result, relative to its folder: ``{}`` is the result's stem.
EXPLAIN_FILES = (osp.join('explain', '{}_mixture_weights.png'), osp.join('explain', '{}_residuals.png'))


def explain_files(name):
    """The ``--explain`` figures written for the result file ``name`` (paths relative to its folder)."""
    stem = osp.splitext(osp.basename(name))[0]
    return [pattern.format(stem) for pattern in EXPLAIN_FILES]


OutputPlan = namedtuple('OutputPlan', ['input', 'target', 'note', 'error'])
OutputPlan.__doc__ = """input: the input path; target: the result's path (None when refused); note: a renaming to
report ('' when none); error: why the input is refused ('' when it is not)."""


def _file_id(path):
    """(device, inode) of an existing file, else its normalised real path: two paths of one file compare equal."""
    try:
        status = os.stat(path)
        return status.st_dev, status.st_ino
    except OSError:
        return osp.normcase(osp.realpath(path))


def base_names(paths):
    """Rule 1: ``<stem>.png`` per input; inputs that share a stem get ``<stem>_<ext>.png``."""
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    folded = [stem.casefold() for stem in stems]
    return [f'{stem}.png' if folded.count(stem.casefold()) == 1 else
            f'{stem}_{osp.splitext(p)[1][1:].lower()}.png' for stem, p in zip(stems, paths)]


def plan_outputs(paths, output_dir, extra_files=None):
    """The result path of every input under ``output_dir`` by the module's rule (nothing is written).

    Args:
        paths (list[str]): Input image files.
        output_dir (str): The output folder (may be the input folder, or not exist yet).
        extra_files (callable | None): ``extra_files(result_name)`` -> other paths (relative to ``output_dir``)
            written for that result, e.g. the ``--explain`` plots; checked against the inputs too.

    Returns:
        list[OutputPlan]: One per input, in the order of ``paths``.
    """
    input_ids = {_file_id(p): p for p in paths}
    order = sorted(range(len(paths)), key=lambda i: paths[i])
    names = base_names(paths)
    plans, used = [None] * len(paths), set()
    for i in order:
        name, note = names[i], ''
        stem = osp.splitext(name)[0]
        counter = 1
        while name.casefold() in used or (counter > 1 and _file_id(osp.join(output_dir, name)) in input_ids):
            counter += 1
            name = f'{stem}_{counter}.png'
        if counter > 1:
            note = f'{paths[i]}: {names[i]} is already the result of another input; writing {name} instead'
        written = [name, *(extra_files(name) if extra_files else [])]
        clash = next((osp.join(output_dir, w) for w in written if _file_id(osp.join(output_dir, w)) in input_ids),
                     None)
        if clash is not None:
            plans[i] = OutputPlan(paths[i], None, '', f'{paths[i]}: its output {clash} would overwrite the input '
                                  f'{input_ids[_file_id(clash)]}; choose another output folder (-o)')
        else:
            used.add(name.casefold())
            plans[i] = OutputPlan(paths[i], osp.join(output_dir, name), note, '')
    return plans


def existing_outputs_problem(paths, overwrite):
    """None when none of ``paths`` exists or ``overwrite`` is true, else the refusal naming the existing ones."""
    existing = [path for path in paths if osp.lexists(path)]
    if not existing or overwrite:
        return None
    return f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: pass --overwrite to replace " \
           f"{'it' if len(existing) == 1 else 'them'}, or choose another output"

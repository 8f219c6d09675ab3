"""The compare file of ``basicsr compare``: its declared keys, and every check made before anything runs.

A compare file names the test sets once (``datasets``, the ``datasets`` block of a test YAML) and lists the
systems (``systems``), each a train YAML and/or a test YAML, finished weights or a finished experiment folder.
Each problem is reported with the file and the key; all problems are reported at once.
"""
import copy
import os.path as osp

from vlunet_basicsr.tools.options.checks import check_required_paths, dataset_entry_problems, plain_name_problem
from vlunet_basicsr.tools.options.spec import REQUIRED, Option, check_entry
from vlunet_basicsr.tools.options.loading import force_values, load_yaml

#: The keys of one entry of ``systems``.
SYSTEM_OPTIONS = (
    Option('name', 'str', REQUIRED, 'Name of the system in the report; also its folder under experiments/ and '
           'results/ of the output: a plain name.'),
    Option('train', 'str', None, 'A train YAML: the system is trained in this run, then tested with its weights; '
           'with weights or experiment it is not trained here, and gives the networks and the timed training step.'),
    Option('test', 'str', None, 'A test YAML (network_g, network_clip, prompts, path, val). Default: derived from '
           'the train YAML (its model, networks, prompts and val settings).'),
    Option('weights', 'str', None, 'Finished weights (net_g.pth) to test instead of training.'),
    Option('experiment', 'str', None, 'A finished experiment folder: its models/net_g_latest.pth is tested.'),
)

#: The keys of ``timing``: what the compare process measures itself, on the device of the runs.
TIMING_OPTIONS = (
    Option('train_steps', 'int', 5, 'Training steps timed per system (median reported), on one batch of its train '
           'set: guidance, forward, loss, backward, optimizer; data loading excluded.', minimum=1),
    Option('warmup_steps', 'int', 1, 'Untimed training steps (and untimed images) before the timed ones.',
           minimum=0),
    Option('infer_images', 'int', 10, 'Test images timed per system (mean reported), taken in turn from the test '
           'sets: guidance and restoration of one image, as in testing.', minimum=1),
)

#: The top-level keys of a compare file.
OPTIONS = (
    Option('name', 'str', REQUIRED, 'Name of the comparison (the report title).'),
    Option('datasets', 'dict', REQUIRED, 'The test sets, as in a test YAML (test_1, test_2, ...): every system is '
           'tested on these, its own test datasets replaced.'),
    Option('systems', 'list[dict]', REQUIRED, 'The systems to compare, in report order.', entries=SYSTEM_OPTIONS,
           entry_owner='a system'),
    Option('total_iter', 'int', None, 'Every system trained in this run trains this many iterations (train.total_iter,'
           ' the scheduler\'s total_iter; checkpoint and validation frequencies are capped to it). Default: each '
           'train YAML\'s own.', minimum=1),
    Option('timing', 'dict', None, 'Timing settings (the keys below).'),
)

#: ``val.metrics`` of every test run: the papers' float RGB protocol.
METRICS = {'psnr': {'type': 'calculate_psnr_float'}, 'ssim': {'type': 'calculate_ssim_float'}}


def _dataset_problems(datasets):
    """Problems of the shared test sets: types, declared keys, plain unique names, fixed noise seeds."""
    from basicsr.utils.registry import DATASET_REGISTRY
    problems, names = [], {}
    for phase, entry in datasets.items():
        where = f'datasets.{phase}'
        if not str(phase).startswith('test'):
            problems.append(f"{where}: test sets are named test_1, test_2, ... (a phase starting with 'test')")
        if not isinstance(entry, dict):
            problems.append(f'{where}: expected a mapping of dataset options, got {entry!r}')
            continue
        name_problem = plain_name_problem(entry.get('name'))
        if name_problem:
            problems.append(f'{where}.name: {name_problem}')
        elif entry['name'] in names:
            problems.append(f"{where}.name: '{entry['name']}' is also the name of datasets.{names[entry['name']]}")
        else:
            names[entry['name']] = phase
        if entry.get('type') not in DATASET_REGISTRY:
            problems.append(f"{where}.type: {entry.get('type')!r} is not a registered dataset")
            continue
        problems += dataset_entry_problems(DATASET_REGISTRY.get(entry['type']), entry, where)
        if entry.get('noise_sigma') is not None and entry.get('noise_seed') is None:
            problems.append(f'{where}.noise_seed: required with noise_sigma here, so that every system is tested on '
                            'the same noisy images')
    return problems


def _system_problems(index, system):
    where = f'systems[{index}]'
    problems = []
    if not system.get('train') and not system.get('test'):
        problems.append(f'{where}: give a train YAML, a test YAML or both')
    if system.get('weights') and system.get('experiment'):
        problems.append(f'{where}: weights and experiment are exclusive: the weights come from one of them')
    if (system.get('weights') or system.get('experiment')) and not (system.get('test') or system.get('train')):
        problems.append(f'{where}.test: required with weights or experiment (it says which network they are)')
    for key in ('train', 'test', 'weights'):
        if system.get(key) and not osp.isfile(system[key]):
            problems.append(f'{where}.{key}: file not found: {system[key]}')
    if system.get('experiment'):
        latest = osp.join(system['experiment'], 'models', 'net_g_latest.pth')
        if not osp.isfile(latest):
            problems.append(f'{where}.experiment: {latest} not found (a finished experiment folder has it)')
    return problems


def compare_problems(opt, check_paths=True):
    """Every problem of a loaded compare file (values are normalised in place), one line each.

    Args:
        opt (dict): The compare file's content.
        check_paths (bool): Also check that YAMLs, weights and data paths exist. Default: True.

    Returns:
        list[str]: The problems, each starting with its key.
    """
    problems = check_entry(opt, OPTIONS, '', 'a compare file')
    if isinstance(opt.get('timing'), dict):
        problems += check_entry(opt['timing'], TIMING_OPTIONS, 'timing', 'timing')
    if isinstance(opt.get('datasets'), dict):
        if not opt['datasets']:
            problems.append('datasets: give at least one test set')
        problems += _dataset_problems(opt['datasets'])
        if check_paths:
            try:
                check_required_paths({'datasets': opt['datasets']}, 'datasets')
            except FileNotFoundError as error:
                problems += [line.strip() for line in str(error).splitlines()[1:]]
    systems = opt.get('systems')
    if isinstance(systems, list) and all(isinstance(s, dict) for s in systems):
        if not systems:
            problems.append('systems: give at least one system')
        seen = {}
        for index, system in enumerate(systems):
            name = system.get('name')
            if isinstance(name, str) and not plain_name_problem(name):
                if name in seen:
                    problems.append(f"systems[{index}].name: '{name}' is also the name of systems[{seen[name]}]")
                seen.setdefault(name, index)
            elif name is not None:
                problems.append(f'systems[{index}].name: {plain_name_problem(name)}')
            problems += _system_problems(index, system) if check_paths else []
    return problems


def load_compare_file(path, force_yml=None, check_paths=True):
    """Read and check a compare file; ValueError naming the file and every bad key.

    Args:
        path (str): The compare file.
        force_yml (list[str] | None): ``key:sub=value`` overrides, as ``--force_yml`` of train and test.
        check_paths (bool): Also check that YAMLs, weights and data paths exist. Default: True.

    Returns:
        dict: The options, with ``timing`` completed with its defaults.
    """
    opt = load_yaml(path)
    if force_yml:
        try:
            force_values(opt, force_yml)
        except (KeyError, ValueError) as error:
            raise ValueError(f'{path}: {error}') from None
    problems = compare_problems(opt, check_paths)
    if problems:
        raise ValueError(f'{path}:\n  ' + '\n  '.join(problems))
    timing = dict(opt.get('timing') or {})
    for option in TIMING_OPTIONS:
        timing.setdefault(option.key, option.default)
    opt['timing'] = timing
    opt['datasets'] = copy.deepcopy(opt['datasets'])
    return opt

"""``basicsr compare -opt COMPARE.yml``: train and/or test every system of a compare file on the same test sets
and write one report.

For each system, in order: its training run (``basicsr train``, when it has a train YAML) and its test run
(``basicsr test`` on the compare file's test sets, with the float RGB PSNR/SSIM), each in its own process with
its folders under the output folder; then, in this process, its size, MACs, training-step and inference time and
the accuracy of its predicted degradation (`vlunet_basicsr.tools.compare.measure`). A system that fails is reported
with its stage and error, and the others still run. Then report.json, report.md, psnr.png and one grid per test
set are written.
"""
import os
import os.path as osp
import platform
import shutil
import sys
import time
import traceback

import yaml

#: The file that marks a folder as the output of basicsr compare (the compare file as run).
MARKER = 'compare.yml'


def prepare_output(root, overwrite):
    """Create the output folder; an existing one is replaced only with ``overwrite`` and only when it is a
    previous comparison's output (it holds `MARKER`). Returns an error message or None."""
    if osp.isdir(root) and os.listdir(root):
        if not overwrite:
            return f'{root} exists: pass --overwrite to replace it, or -o a new folder'
        if not osp.isfile(osp.join(root, MARKER)):
            return f'{root} exists and is not the output of basicsr compare (it has no {MARKER}): not replacing it'
        cwd = osp.realpath(os.getcwd())
        if cwd == osp.realpath(root) or cwd.startswith(osp.realpath(root) + os.sep):
            return f'{root} holds the working folder: not replacing it'
        shutil.rmtree(root)
    elif osp.exists(root) and not osp.isdir(root):
        return f'{root} exists and is not a folder'
    for sub in ('options', 'logs'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    return None


def _quiet_logger(root):
    """BasicSR's logger writes to logs/compare.log; only warnings reach the console (networks are printed)."""
    import logging

    from basicsr.utils import get_root_logger
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO,
                             log_file=osp.join(root, 'logs', 'compare.log'))
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)


def _free_memory():
    import gc

    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_system(system, compare_opt, root):
    """Train, test and measure one system; a failure is recorded with its stage and error.

    Returns:
        dict: The system's entry of report.json.
    """
    from vlunet_basicsr.tools.compare import measure, plan, report, stages
    name = system['name']
    record = {'status': 'running', 'source': {k: system[k] for k in ('train', 'test', 'weights', 'experiment')
                                              if system.get(k)}, 'seconds': {}}
    stage = 'options'
    try:
        system_plan = plan.plan_system(system, compare_opt, root)
        plan.check_plan(system_plan)
        test_path = plan.write_options(system_plan.test_opt, osp.join(root, 'options', f'{name}_test.yml'))
        record['test_options'] = osp.relpath(test_path, root)
        record['weights'] = system_plan.weights
        if system_plan.train_here:
            stage = 'train'
            train_path = plan.write_options(system_plan.train_opt, osp.join(root, 'options', f'{name}_train.yml'))
            record['train_options'] = osp.relpath(train_path, root)
            record['train_iters'] = system_plan.train_opt['train']['total_iter']
            print(f'[{name}] training ({record["train_iters"]} iterations; log: logs/{name}_train.log)', flush=True)
            record['seconds']['train'] = stages.run_pipeline('train', train_path, root,
                                                             osp.join(root, 'logs', f'{name}_train.log'))
        stage = 'test'
        print(f'[{name}] testing (log: logs/{name}_test.log)', flush=True)
        record['seconds']['test'] = stages.run_pipeline('test', test_path, root,
                                                        osp.join(root, 'logs', f'{name}_test.log'))
        metrics_path = osp.join(root, 'results', name, 'metrics.json')
        record['metrics_json'] = osp.relpath(metrics_path, root)
        set_names = [compare_opt['datasets'][phase]['name'] for phase in sorted(compare_opt['datasets'])]
        record['sets'] = report.read_metrics(metrics_path, set_names)
        record['average'] = report.average(record['sets'])
        stage = 'measure'
        print(f'[{name}] measuring size, MACs, speed and degradation accuracy', flush=True)
        start = time.time()
        record['train_step_s'] = record['train_step_times_s'] = record['train_batch'] = None
        if system_plan.train_opt is not None:
            if not system_plan.train_here:  # the train YAML of finished weights: timed, not run
                train_path = plan.write_options(system_plan.train_opt, osp.join(root, 'options', f'{name}_train.yml'))
                record['train_options'] = osp.relpath(train_path, root)
            record.update(measure.measure_training(train_path, root, compare_opt['timing']))
        _free_memory()
        record.update(measure.measure_testing(test_path, root, compare_opt['timing']))
        record['seconds']['measure'] = time.time() - start
        record['status'] = 'ok'
    except Exception as error:  # reported; the other systems still run
        message = str(error) if isinstance(error, stages.StageFailed) else f'{type(error).__name__}: {error}'
        record.update(status='failed', stage=stage, error=message)
        with open(osp.join(root, 'logs', f'{name}_error.log'), 'w') as f:
            f.write(traceback.format_exc())
        print(f'[{name}] FAILED in its {stage} stage: {message}', file=sys.stderr, flush=True)
    finally:
        _free_memory()
    return record


def _machine():
    import torch
    from vlunet_basicsr.utils.timing import cpu_model
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model()
    return {'device': device, 'cuda': torch.cuda.is_available(), 'cpu_count': os.cpu_count(),
            'torch_threads': torch.get_num_threads(), 'torch': torch.__version__, 'platform': platform.platform()}


def run(args):
    """``basicsr compare``; returns the exit code: 0 all systems done, 1 some failed, 2 bad compare file or
    output folder."""
    from vlunet_basicsr.tools.compare import compare_file, figures, measure, report
    start = time.time()
    try:
        opt = compare_file.load_compare_file(args.opt, args.force_yml)
    except (ValueError, FileNotFoundError) as error:
        print(f'basicsr compare: {error}', file=sys.stderr)
        return 2
    root = osp.abspath(args.output)
    problem = prepare_output(root, args.overwrite)
    if problem:
        print(f'basicsr compare: {problem}', file=sys.stderr)
        return 2
    with open(osp.join(root, MARKER), 'w') as f:
        yaml.safe_dump({**opt, 'compare_file': osp.abspath(args.opt)}, f, sort_keys=False)
    _quiet_logger(root)
    systems = {system['name']: run_system(system, opt, root) for system in opt['systems']}
    for phase, dataset_opt in opt['datasets'].items():
        dataset_opt['phase'] = 'test'
    set_names = [opt['datasets'][phase]['name'] for phase in sorted(opt['datasets'])]
    ok = [name for name, system in systems.items() if system['status'] == 'ok']
    figures.save_psnr_chart({name: {**{s: systems[name]['sets'][s]['psnr'] for s in set_names},
                                    'average': systems[name]['average']['psnr']} for name in ok},
                            osp.join(root, 'psnr.png'))
    grids = figures.save_grids(root, opt['datasets'], list(systems))
    result = {'name': opt['name'], 'compare_file': osp.abspath(args.opt), 'test_sets': set_names,
              'protocol': 'float RGB PSNR/SSIM of outputs clipped to [0, 1] (calculate_psnr_float, '
              'calculate_ssim_float)', 'macs_size': measure.MACS_SIZE, 'timing': opt['timing'], 'machine': _machine(),
              'seconds': time.time() - start, 'systems': systems, 'figures': {'psnr': 'psnr.png', 'grids': grids}}
    report.write_json(result, osp.join(root, 'report.json'))
    with open(osp.join(root, 'report.md'), 'w') as f:
        f.write(report.markdown(result))
    failed = [name for name in systems if name not in ok]
    print(f"\nbasicsr compare: {len(ok)} of {len(systems)} systems done"
          + (f" ({', '.join(failed)} failed)" if failed else '') + f'; report in {root}/report.md, report.json')
    return 1 if failed else 0

"""The comparison's figures as read from each test run, and report.json / report.md."""
import json
import math


def read_metrics(path, set_names):
    """Per set PSNR, SSIM and image count from a test run's ``metrics.json``
    (`vlunet_basicsr.models.restoration_metrics.write_metrics_json`); every set must be there."""
    with open(path) as f:
        metrics = json.load(f)
    missing = [name for name in set_names if name not in metrics]
    if missing:
        raise ValueError(f'{path} has no results for {", ".join(missing)} (sets: {", ".join(metrics)})')
    return {name: {'psnr': metrics[name].get('psnr'), 'ssim': metrics[name].get('ssim'),
                   'images': metrics[name]['counts']['images']} for name in set_names}


def average(sets):
    """Mean PSNR and SSIM over the sets (each set counts once, as the papers' average column)."""
    result = {}
    for metric in ('psnr', 'ssim'):
        values = [entry[metric] for entry in sets.values() if entry[metric] is not None]
        result[metric] = sum(values) / len(values) if values else None
    return result


def write_json(report, path):
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)


def _number(value, digits):
    return '-' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.{digits}f}'


def _scaled(value, scale, digits):
    return '-' if value is None else f'{value / scale:.{digits}f}'


def markdown(report):
    """The text of report.md: PSNR/SSIM per set, cost per system, failures, and the figures."""
    sets = report['test_sets']
    systems = report['systems']
    timing = report['timing']
    lines = [f"# {report['name']}", '',
             f"Test sets: {', '.join(sets)}. Metrics: {report['protocol']}. Device: {report['machine']['device']} "
             f"({report['machine']['torch_threads']} torch threads). Wall time: {report['seconds']:.0f} s.", '',
             '## PSNR / SSIM', '',
             '| system | ' + ' | '.join(sets) + ' | average |', '| --- ' * (len(sets) + 2) + '|']
    for name, system in systems.items():
        if system['status'] != 'ok':
            lines.append(f'| {name} | ' + ' | '.join('failed' for _ in sets) + ' | failed |')
            continue
        cells = [f"{_number(system['sets'][s]['psnr'], 2)} / {_number(system['sets'][s]['ssim'], 4)}" for s in sets]
        cells.append(f"{_number(system['average']['psnr'], 2)} / {_number(system['average']['ssim'], 4)}")
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Cost and degradation accuracy', '',
              f"Parameters of net_g (of the guidance encoder in brackets); MACs of net_g at 1x3x{report['macs_size']}"
              f"x{report['macs_size']} (the encoder's in brackets); training step: median of {timing['train_steps']} "
              f"steps after {timing['warmup_steps']} untimed, one batch of the system's train set; inference: mean "
              f"over up to {timing['infer_images']} test images taken in turn from the sets, after "
              f"{timing['warmup_steps']} untimed; accuracy of the encoder's predicted degradation over all test "
              'images.', '',
              '| system | params (M) | MACs (G) | train step (s) | batch | inference (s/image) | type accuracy |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for name, system in systems.items():
        if system['status'] != 'ok':
            continue
        guidance = f" ({_scaled(system['guidance_params'], 1e6, 2)})" if system.get('guidance_params') else ''
        guidance_macs = f" ({_scaled(system['guidance_macs_256'], 1e9, 3)})" if system.get('guidance_macs_256') else ''
        accuracy = system.get('degradation_accuracy')
        batch = 'x'.join(map(str, system['train_batch'])) if system.get('train_batch') else '-'
        lines.append(f"| {name} | {_scaled(system['params'], 1e6, 3)}{guidance} | "
                     f"{_scaled(system['macs_256'], 1e9, 2)}{guidance_macs} | {_number(system.get('train_step_s'), 3)} "
                     f"| {batch} | {_number(system['infer_s'], 3)} | "
                     f"{_number(accuracy['overall'] if accuracy else None, 3)} |")
    failed = {name: system for name, system in systems.items() if system['status'] != 'ok'}
    if failed:
        lines += ['', '## Failed', '']
        for name, system in failed.items():
            lines += [f"- **{name}** failed in its {system['stage']} stage:", '', '```', system['error'], '```', '']
    lines += ['', '## Figures', '', f"![PSNR per test set]({report['figures']['psnr']})", '']
    lines += [f'![{name}]({path})' for name, path in report['figures']['grids'].items()]
    return '\n'.join(lines) + '\n'

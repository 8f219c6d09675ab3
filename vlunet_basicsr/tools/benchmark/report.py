"""The benchmark's report: the machine it ran on, the table it prints and the JSON it writes."""
import json
import os
import platform

import torch

from vlunet_basicsr.tools.benchmark.eager import describe_flop_rate


def machine_facts(device, load_processes):
    """Platform, processor, thread count, torch version, the load beside the run and the device (with CUDA's
    TF32 settings: its "float32" convolutions run in TF32 under torch's default)."""
    machine = {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
               'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
               'load_processes': load_processes, 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
               'device': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}
    if device.type == 'cuda':
        machine.update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                       matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return machine


def print_results(results):
    """One line per eager measurement (the exported-graph and --amp-ab rows print as they are measured)."""
    print(f"{'measure':<22}{'seconds':>10}{'peak MB':>10}  notes")
    for name, values in results.items():
        if name in ('onnxruntime', 'openvino', 'amp_ab'):
            continue
        seconds = values.get('step_s', values.get('seconds'))
        note = f"CLIP {values['clip_s']:.3f} s = {100 * values['clip_share']:.1f}% of the step" if 'clip_s' in values \
            else f"{values['size']}x{values['size']}" + (f", tiles {values['tile']}" if values['tile'] else '')
        first = values.get('first_step_s', values.get('first_call_s'))
        print(f"{name:<22}{seconds:>10.3f}{values['peak_memory_mb']:>10.0f}  {note}; first run {first:.1f} s")
        if 'flops' in values:
            print(describe_flop_rate(values))


def write_json(path, report):
    """``report`` as JSON at ``path`` (its folder made), when a path is given."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(report, f, indent=1)

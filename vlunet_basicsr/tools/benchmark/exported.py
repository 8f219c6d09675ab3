"""--backend onnxruntime / openvino: torch eager against the exported graphs on whole-image inference, and ONNX
Runtime's kernel profile."""
import functools
import json
import os
import time

import torch

from vlunet_basicsr.utils.timing import alternating


def exported_runtimes(args, device):
    """The runtimes --backend compares with torch eager: ONNX Runtime, or OpenVINO in f32 and in bf16 (on
    torch's thread count)."""
    from vlunet_basicsr.tools.export.onnx_runtime import OnnxRuntime, execution_providers
    if args.backend == 'onnxruntime':
        return {'onnxruntime': OnnxRuntime(execution_providers(device.type))}
    from vlunet_basicsr.tools.export.openvino_runtime import OpenVinoRuntime
    return {f'openvino_{p}': OpenVinoRuntime(p, 'cpu', torch.get_num_threads()) for p in ('f32', 'bf16')}


def onnxruntime_comparison(args, system, device):
    """Torch eager against the --backend runtime(s) on the same network, guidance and images, timed in turn
    (`alternating`): median seconds per size (ONNX Runtime: ``onnxruntime_s``, ``speedup``, ``max_abs_diff``;
    OpenVINO: ``openvino_f32_s``, ``openvino_f32_speedup``, ``openvino_f32_max_abs_diff`` and the same for bf16)."""
    import tempfile

    from vlunet_basicsr.models.guidance import Guidance
    from vlunet_basicsr.tools.export.onnx_export import export_system
    from vlunet_basicsr.tools.export.onnx_runtime import OnnxGuidance, OnnxNetwork, guidance_path
    from vlunet_basicsr.tools.restore.restorer import Networks
    from vlunet_basicsr.utils.restore_util import restore_image
    net, clip = system.net.eval(), system.clip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or os.path.join(args.onnx_dir or tmp, 'model.onnx')
        if not args.onnx:
            start = time.perf_counter()
            export_system(Networks(net, system.inputs, clip, system.prompts, None, system.rule), path)
            results['export_s'] = time.perf_counter() - start
        graphs = {name: (OnnxNetwork(path, runtime),
                         Guidance(system.inputs, OnnxGuidance(guidance_path(path), runtime) if clip else None,
                                  system.prompts))
                  for name, runtime in exported_runtimes(args, device).items()}
        onnx_net, onnx_guidance = graphs.get('onnxruntime', (None, None))
        for size in args.infer_sizes:
            image = torch.rand(1, 3, size, size, device=device)

            def restored(graph, guidance):
                with torch.no_grad():
                    final = system.inputs.final(graph, guidance(image, evaluating=True))
                    return restore_image(final, image, size_rule=system.rule)

            expected = restored(net, system.guidance)
            runs = {'torch': lambda: restored(net, system.guidance)}
            runs.update({name: functools.partial(restored, *pair) for name, pair in graphs.items()})
            medians = alternating(runs, device, args.warmup, args.repeat)  # torch and each runtime in turn
            torch_s = medians['torch']
            row = results[f'inference_{size}'] = {'size': size, 'torch_eager_s': torch_s}
            for name, (graph, guidance) in graphs.items():
                difference = (restored(graph, guidance) - expected).abs().max().item()
                seconds = medians[name]
                prefix = '' if name == 'onnxruntime' else f'{name}_'
                row.update({f'{name}_s': seconds, f'{prefix}speedup': torch_s / seconds,
                            f'{prefix}max_abs_diff': difference})
                print(f'{size}x{size}: torch eager {torch_s:.3f} s, {name} {seconds:.3f} s '
                      f'({torch_s / seconds:.2f}x), max |{name} - torch| {difference:.2e}', flush=True)
            if args.profile and onnx_net is not None:
                kernels = onnxruntime_profile(onnx_net, lambda graph: restored(graph, onnx_guidance), args.repeat)
                results[f'inference_{size}']['onnxruntime_kernel_ms'] = kernels
                print_onnxruntime_profile(f'{size}x{size}', kernels, args.profile)
    results['providers'] = [graph.describe() for graph, _ in graphs.values()]
    return results


def onnxruntime_profile(onnx_net, run, repeat):
    """Kernel milliseconds per run of the restoration graph, by operator type, from ONNX Runtime's profiler:
    ``run(graph)`` once untimed, then ``repeat`` times, on a profiling session of ``onnx_net``'s graph."""
    import collections
    import copy
    import tempfile

    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, 'profile')
        profiled = copy.copy(onnx_net)
        profiled.session = onnxruntime.InferenceSession(onnx_net.path, options,
                                                        providers=onnx_net.session.get_providers())
        with torch.no_grad():
            for _ in range(1 + repeat):
                run(profiled)
        with open(profiled.session.end_profiling()) as f:
            events = json.load(f)
    runs = sorted(event['ts'] for event in events if event.get('name') == 'model_run')
    kernels = collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time') and event['ts'] >= runs[1]:
            kernels[event['args']['op_name']] += event['dur'] / 1000 / repeat
    return dict(kernels.most_common())


def print_onnxruntime_profile(name, kernels, rows):
    total = sum(kernels.values())
    print(f'ONNX Runtime kernels at {name}: {total:.1f} ms per run; the {rows} costliest operator types:')
    for op, ms in list(kernels.items())[:rows]:
        print(f'  {op:<24}{ms:>10.1f} ms {100 * ms / total:>5.1f}%')

"""What the compare process measures itself, on the device of the runs: size, MACs, speed, degradation accuracy.

Models are built from the same option files as the runs (`vlunet_basicsr.tools.options.parse_options` and BasicSR's
builders), so they are the networks, guidance and restoration path that were trained and tested.
"""
import statistics

import torch
from torch.utils.data import default_collate

from vlunet_basicsr.utils.timing import count_macs, count_parameters, seconds

#: Side of the square image MACs are counted at (``macs_256``).
MACS_SIZE = 256


def _build(opt_path, root, is_train):
    from basicsr.models import build_model
    from vlunet_basicsr.tools.options.pipeline import parse_options
    opt, _ = parse_options(root, opt_path, is_train=is_train)
    return opt, build_model(opt)


def measure_training(opt_path, root, timing):
    """Seconds of a training step of the system in ``opt_path`` (a train YAML as run), fresh weights.

    One batch of ``batch_size_per_gpu`` samples of the train set is fed each step: guidance, forward, loss,
    backward and optimizer step are timed (`GuidedRestorationModel.feed_data` + ``optimize_parameters``), data
    loading is not. ``timing.warmup_steps`` untimed steps come first.

    Returns:
        dict: ``train_step_s`` (median), ``train_step_times_s`` (every timed step), ``train_batch`` (the lq
        batch shape).
    """
    from basicsr.data import build_dataset
    opt, model = _build(opt_path, root, is_train=True)
    dataset_opt = opt['datasets']['train']
    dataset = build_dataset(dataset_opt)
    size = dataset_opt['batch_size_per_gpu']
    batch = default_collate([dataset[i % len(dataset)] for i in range(size)])

    def step(current_iter):
        model.feed_data(batch)
        model.optimize_parameters(current_iter)

    for i in range(timing['warmup_steps']):
        step(i + 1)
    times = [seconds(lambda: step(i + 1), model.device) for i in range(timing['train_steps'])]
    shape = list(batch['lq'].shape)
    del model
    return {'train_step_s': statistics.median(times), 'train_step_times_s': times, 'train_batch': shape}


def _test_sets(opt):
    from basicsr.data import build_dataset
    return [build_dataset(opt['datasets'][phase]) for phase in sorted(opt['datasets'])]


def _round_robin(datasets, count):
    """(set index, image index) pairs, taking the sets in turn, at most ``count``."""
    pairs, index = [], 0
    while len(pairs) < count and any(index < len(d) for d in datasets):
        pairs += [(s, index) for s, d in enumerate(datasets) if index < len(d)]
        index += 1
    return pairs[:count]


def degradation_accuracy(model, datasets):
    """Accuracy of the guidance encoder's predicted degradation (the prompt with the highest probability, as
    ``basicsr restore`` reads it) against each image's ``label``, per set and over all labelled images.

    Returns:
        dict | None: ``{'sets': {set: accuracy | None}, 'overall': accuracy | None, 'images': n}``, or None for
        a system without a guidance encoder.
    """
    encoder = model.net_clip
    if encoder is None:
        return None
    prompts = model.guidance.prompts
    sets, correct_all, labelled_all = {}, 0, 0
    with torch.no_grad():
        text_features = encoder.encode_text(prompts)
        for dataset in datasets:
            correct = labelled = 0
            for index in range(len(dataset)):
                sample = dataset[index]
                label = sample.get('label')
                if label is None or not 0 <= int(label) < len(prompts):
                    continue
                vector = encoder.degradation_vector(sample['lq'][None].to(model.device))
                predicted = int(encoder.probabilities_over(vector, text_features).argmax(dim=1))
                correct += predicted == int(label)
                labelled += 1
            sets[dataset.opt['name']] = correct / labelled if labelled else None
            correct_all, labelled_all = correct_all + correct, labelled_all + labelled
    return {'sets': sets, 'overall': correct_all / labelled_all if labelled_all else None, 'images': labelled_all}


def measure_testing(opt_path, root, timing):
    """Size, MACs, inference time and degradation accuracy of the system in ``opt_path`` (a test YAML as run).

    Returns:
        dict: ``params`` (net_g), ``guidance_params`` (the frozen encoder, None without one), ``macs_256`` (net_g
        on 1x3x256x256 with its guidance input), ``guidance_macs_256`` (the encoder on that image),
        ``infer_s`` (mean seconds per test image: guidance and restoration, as in testing),
        ``infer_times_s`` (each timed image), ``infer_images`` ([set, image index] of each) and
        ``degradation_accuracy`` (`degradation_accuracy`).
    """
    opt, model = _build(opt_path, root, is_train=False)
    device = model.device
    net = model.get_bare_model(model.net_g).eval()
    result = {'params': count_parameters(net), 'guidance_params': count_parameters(model.net_clip) or None}
    image = torch.rand(1, 3, MACS_SIZE, MACS_SIZE, device=device)
    with torch.no_grad():
        guided = model.net_clip is not None and model.network_inputs.guided
        guidance = model.guidance(image, None, True)
        result['guidance_macs_256'] = count_macs(lambda: model.guidance(image, None, True)) if guided else None
        result['macs_256'] = count_macs(lambda: model.network_inputs.final(net, guidance)(image))
    datasets = _test_sets(opt)
    order = _round_robin(datasets, timing['warmup_steps'] + timing['infer_images'])
    warmup = min(timing['warmup_steps'], len(order) - 1)  # small sets: at least one image is timed

    def restore(set_index, index):
        model.feed_data(default_collate([datasets[set_index][index]]))
        model.test()

    times = [seconds(lambda: restore(*pair), device) for pair in order][warmup:]
    result.update(infer_s=statistics.mean(times), infer_times_s=times,
                  infer_images=[[datasets[s].opt['name'], i] for s, i in order[warmup:]])
    result['degradation_accuracy'] = degradation_accuracy(model, datasets)
    del model
    return result

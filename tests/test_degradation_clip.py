"""DegradationCLIP, the single CLIP preprocessing, the contrastive loss and stage-1 adapter tuning."""
import glob
import math
import os
import re
import textwrap

import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models import build_model
from conftest import reference_file, run_cli, run_code_in_a_fork, script_main, write_yaml
from vlunet_basicsr.utils.clip_preprocess import clip_input

#: A tiny open_clip configuration (random weights) whose embedding is 512-d like ViT-B-32's.
TINY_CLIP = {'embed_dim': 512,
             'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'patch_size': 8, 'head_width': 16},
             'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}


def _tiny_clip(**kwargs):
    return build_network({'type': 'DegradationCLIP', 'model_name': 'ViT-B-32', 'pretrained': None,
                          'model_cfg': TINY_CLIP, **kwargs})


def test_clip_input_resizes_crops_and_normalises():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    out = clip_input(torch.full((2, 3, 40, 60), 0.5), 32, mean, std)
    assert out.shape == (2, 3, 32, 32)
    for c in range(3):
        assert torch.allclose(out[:, c], torch.full((2, 32, 32), (0.5 - mean[c]) / std[c]), atol=1e-5)
    # Shorter side to 32 (60 -> 48), then the centre 32 columns: a left-to-right ramp keeps its middle.
    ramp = torch.linspace(0, 1, 60).expand(1, 3, 40, 60)
    centred = clip_input(ramp, 32, (0, 0, 0), (1, 1, 1))
    assert abs(centred[0, 0, 16, :].mean().item() - 0.5) < 0.02
    assert clip_input(torch.rand(1, 1, 20, 20), 32, mean, std).shape == (1, 3, 32, 32)  # grayscale to RGB


def test_released_adapters_reproduce_the_reference_vectors(tmp_path):
    io = torch.load(reference_file('clip_adapter_official_io.pt'), weights_only=True)
    for adapter_path in (reference_file('clip_adapter_official_format.pth'), _converted_adapters(tmp_path)):
        clip = _tiny_clip(adapter_path=adapter_path).eval()
        with torch.no_grad():
            image = clip.image_adapter(io['clip_image_features'])
            text = clip.text_adapter(io['clip_text_features'])
        assert (image - io['adapted_image_features']).abs().max() < 1e-5
        assert (text - io['adapted_text_features']).abs().max() < 1e-5


def _converted_adapters(tmp_path):
    assert script_main('convert_official_checkpoint')([reference_file('clip_adapter_official_format.pth'),
                                                        '--output-dir', str(tmp_path)]) == 0
    return str(tmp_path / 'clip_adapter.pth')


def test_encoder_outputs_and_zero_shot_probabilities():
    clip = _tiny_clip().eval()
    images = clip.preprocess(torch.rand(3, 3, 48, 40))
    assert clip.encode_image(images).shape == (3, 512)
    assert clip.encode_text(['image with noise', 'image with rain']).shape == (2, 512)
    probs = clip.classify(images, ['image with noise', 'image with rain', 'image with haze'])
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(1), torch.ones(3))


def test_degradation_vector_is_the_float32_adapted_image_features_under_any_policy():
    clip = _tiny_clip().eval()
    images = torch.rand(2, 3, 40, 48)
    with torch.no_grad():
        expected = clip.encode_image(clip.preprocess(images))
    vector = clip.degradation_vector(images)
    assert vector.dtype == torch.float32 and not vector.requires_grad
    assert torch.equal(vector, expected)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = clip.degradation_vector(images)
    assert low.dtype == torch.float32 and (low - expected).abs().max() < 0.05 * expected.abs().max()
    prompts = ['image with noise', 'image with rain', 'image with haze']
    assert torch.allclose(clip.prompt_probabilities(vector, prompts), clip.classify(clip.preprocess(images), prompts))
    assert torch.equal(clip.probabilities_over(vector, clip.encode_text(prompts)),
                       clip.prompt_probabilities(vector, prompts))


def test_gradients_reach_adapters_and_temperature_not_the_backbone():
    clip = _tiny_clip().train()
    loss_fn = build_loss({'type': 'DegradationContrastiveLoss'})
    image, text = clip(clip.preprocess(torch.rand(4, 3, 32, 32)), ['a', 'b', 'c'])
    loss_fn(image, text, torch.tensor([0, 1, 2, 1])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in clip.image_adapter.parameters())
    assert all(p.grad is not None for p in clip.text_adapter.parameters())
    assert loss_fn.log_scale.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in clip.backbone.parameters())
    assert not clip.backbone.training  # stays in eval mode


def test_missing_weight_files_fail_with_one_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"network_clip.pretrained: '.*clip_backbone.pth' is not an existing "
                       r'file.*convert_official_checkpoint'):
        _tiny_clip(pretrained=str(tmp_path / 'clip_backbone.pth'))
    with pytest.raises(FileNotFoundError, match='network_clip.adapter_path: no adapter file at .*adapters.pth'):
        _tiny_clip(adapter_path=str(tmp_path / 'adapters.pth'))


def test_uncached_tag_offline_names_the_file_to_get(tmp_path):
    """A process of its own: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when it is imported."""
    code = textwrap.dedent("""
        import vlunet_basicsr
        from vlunet_basicsr.archs.degradation_clip_arch import create_clip_backbone
        create_clip_backbone('ViT-B-32', 'laion2b_s34b_b79k')
    """)
    proc = run_code_in_a_fork(code, {'HF_HUB_OFFLINE': '1', 'HF_HOME': tmp_path / 'hf'})
    assert proc.returncode != 0
    assert "the ViT-B-32 weights 'laion2b_s34b_b79k' are not cached" in proc.stderr
    assert 'huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K' in proc.stderr


def _cross_entropy(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_contrastive_loss_matches_hand_computed_values():
    image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 2])
    s = 1 / 0.07
    r = 1 / math.sqrt(2)
    logits = [[s, 0.0, s * r], [0.0, s, s * r]]  # cosine similarities / tau
    loss_fn = build_loss({'type': 'DegradationContrastiveLoss', 'learnable_temperature': False})
    expected = (_cross_entropy(logits[0], 0) + _cross_entropy(logits[1], 2)) / 2
    assert loss_fn(image, text, labels).item() == pytest.approx(expected, rel=1e-5)

    summed = build_loss({'type': 'DegradationContrastiveLoss', 'reduction': 'sum', 'loss_weight': 2.0})
    assert summed(image, text, labels).item() == pytest.approx(4 * expected, rel=1e-5)

    symmetric = build_loss({'type': 'DegradationContrastiveLoss', 'symmetric': True})
    columns = [[logits[0][0], logits[1][0]], [logits[0][2], logits[1][2]]]  # prompts 0 and 2 have images
    text_to_image = (_cross_entropy(columns[0], 0) + _cross_entropy(columns[1], 1)) / 2
    assert symmetric(image, text, labels).item() == pytest.approx((expected + text_to_image) / 2, rel=1e-5)


def test_multi_positive_counts_prompts_and_same_label_images():
    image = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    loss_fn = build_loss({'type': 'DegradationContrastiveLoss', 'multi_positive': True, 'temperature': 1.0})
    # image 0: candidates [prompt0=1, prompt1=0, image1=1, image2=0]; positives prompt0 and image1.
    log_z = math.log(2 * math.e + 2)
    first = -((1 - log_z) + (1 - log_z)) / 2
    # image 2: candidates [prompt0=0, prompt1=1, image0=0, image1=0]; positive prompt1 only.
    third = -(1 - math.log(math.e + 3))
    expected = (first + first + third) / 3
    assert loss_fn(image, text, labels).item() == pytest.approx(expected, rel=1e-5)


def _stage1_opt(name, total_iter):
    toy = {'type': 'ToyDegradationDataset', 'count': 24, 'size': 32}
    return {
        'name': name, 'model_type': 'CLIPAdapterModel', 'num_gpu': 0, 'manual_seed': 0,
        'plugins': ['toy_degradation_data'],
        'prompts': ['image with noise', 'image with low light', 'image with haze'],
        'class_names': ['noise', 'low light', 'haze'],
        'datasets': {
            'train': {'name': 'toy_train', **toy, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 6},
            'val': {'name': 'toy_val', **toy, 'count': 12},
        },
        'network_clip': {'type': 'DegradationCLIP', 'model_name': 'ViT-B-32', 'pretrained': None,
                         'model_cfg': TINY_CLIP},
        'path': {'pretrain_network_clip': None, 'resume_state': None},
        'train': {'optim_clip': {'type': 'AdamW', 'lr': 2e-3, 'weight_decay': 0.0},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'contrastive_opt': {'type': 'DegradationContrastiveLoss', 'temperature': 0.07}},
        'val': {'val_freq': total_iter},
        'logger': {'print_freq': 10, 'save_checkpoint_freq': total_iter, 'use_tb_logger': True},
    }


def test_stage1_adapter_tuning_from_yaml_learns_the_toy_degradations(tmp_path):
    opt_path = write_yaml(tmp_path / 'stage1.yml', _stage1_opt('toy_stage1', total_iter=30))
    proc = run_cli(['train', '-opt', opt_path], cwd=tmp_path,
                   env_extra={'PYTHONPATH': os.path.dirname(os.path.abspath(__file__))})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'toy_stage1'
    log = '\n'.join(open(p).read() for p in glob.glob(str(exp / '*.log')))
    accuracies = [float(v) for v in re.findall(r'# accuracy: ([0-9.]+)', log)]
    assert accuracies and accuracies[-1] > 0.6, log[-2000:]  # chance is 1/3
    assert '# accuracy [low light]' in log and 'confusion matrix' in log
    assert glob.glob(str(exp / 'visualization' / 'toy_val' / 'similarity_*.png'))
    saved = torch.load(exp / 'models' / 'net_clip_latest.pth', weights_only=True)
    assert all(key.startswith(('image_adapter.', 'text_adapter.')) for key in saved['params'])
    assert 'log_scale' in saved
    tuned = _tiny_clip(adapter_path=str(exp / 'models' / 'net_clip_latest.pth'))  # the format DegradationCLIP loads
    assert torch.equal(tuned.image_adapter[0].weight, saved['params']['image_adapter.0.weight'])


def _adapter_model(models, train_backbone, pretrain=None):
    torch.manual_seed(0)  # the same initial backbone in every model
    train = {'optim_clip': {'type': 'AdamW', 'lr': 1e-2}, 'train_backbone': train_backbone,
             'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
             'contrastive_opt': {'type': 'DegradationContrastiveLoss', 'temperature': 0.07}}
    return build_model({'model_type': 'CLIPAdapterModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
                        'world_size': 1, 'name': 'unit', 'manual_seed': 0,
                        'prompts': ['image with noise', 'image with low light', 'image with haze'],
                        'network_clip': {'type': 'DegradationCLIP', 'model_name': 'ViT-B-32', 'pretrained': None,
                                         'model_cfg': TINY_CLIP},
                        'path': {'pretrain_network_clip': pretrain, 'models': str(models)}, 'train': train})


def test_train_backbone_tunes_the_image_tower_saves_it_and_loads_it_on_resume(tmp_path):
    """Stage 1 with train.train_backbone (the CPU demo's small random backbone): the image tower learns, the text
    tower stays, the backbone is saved in the format network_clip.pretrained loads and is loaded on resume."""
    batch = {'lq': torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
             'label': torch.tensor([0, 1, 2, 0, 1, 2])}
    frozen, tuned = _adapter_model(tmp_path / 'frozen', False), _adapter_model(tmp_path / 'tuned', True)
    start = {key: value.clone() for key, value in frozen.clip.backbone.state_dict().items()}
    assert all(torch.equal(start[key], value) for key, value in tuned.clip.backbone.state_dict().items())
    for model in (frozen, tuned):
        for it in range(3):
            model.feed_data(batch)
            model.optimize_parameters(it + 1)
    for key, value in frozen.clip.backbone.state_dict().items():
        assert torch.equal(start[key], value), key
    changed = {key for key, value in tuned.clip.backbone.state_dict().items() if not torch.equal(start[key], value)}
    assert changed and all(key.startswith('visual.') for key in changed), sorted(changed)[:5]

    for model, folder in ((frozen, tmp_path / 'frozen'), (tuned, tmp_path / 'tuned')):
        folder.mkdir()
        model._save_adapters(-1)
    assert not (tmp_path / 'frozen' / 'net_clip_backbone_latest.pth').exists()
    adapters = str(tmp_path / 'tuned' / 'net_clip_latest.pth')
    loaded = _tiny_clip(pretrained=str(tmp_path / 'tuned' / 'net_clip_backbone_latest.pth'), adapter_path=adapters)
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(loaded.degradation_vector(image), tuned.clip.degradation_vector(image), atol=1e-6)

    resumed = _adapter_model(tmp_path / 'resumed', True, pretrain=adapters)
    for key, value in resumed.clip.backbone.state_dict().items():
        assert torch.equal(value, tuned.clip.backbone.state_dict()[key]), key

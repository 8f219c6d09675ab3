"""The arch protocol's size rule: declared by our archs, derived for BasicSR's SwinIR and RRDBNet, and applied by
training, validation (tiled too) and restore, so that BasicSR's archs run at odd sizes without val.size_multiple."""
import glob
import os.path as osp

import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from conftest import TINY_DGUNET, TINY_VLUNET, TINY_VLUR, degradation_datasets, run_cli, write_image_pairs, write_yaml
from vlunet_basicsr.archs.dgunet_arch import pad_for_dgunet
from vlunet_basicsr.models.network_inputs import size_rule
from vlunet_basicsr.utils.padding import SizeRule, pad_to_multiple
from vlunet_basicsr.utils.restore_util import restore_image

SWINIR = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1.0, 'depths': [1],
          'embed_dim': 12, 'num_heads': [1], 'mlp_ratio': 2, 'upsampler': ''}
RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}


@pytest.mark.parametrize('network_g, rule', [
    (SWINIR, SizeRule(4)),
    ({**SWINIR, 'window_size': 8}, SizeRule(8)),
    ({**RRDB, 'scale': 1}, SizeRule(4)),
    ({**RRDB, 'scale': 2}, SizeRule(2)),
    ({**RRDB, 'scale': 4}, SizeRule(1)),
    (TINY_VLUNET, SizeRule(1)),  # VLUNet, VLURNet and DGUNet pad themselves: nothing pads them again
    (TINY_DGUNET, SizeRule(1)),
    (TINY_VLUR, SizeRule(1)),
    ({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}, SizeRule(1)),
], ids=['SwinIR-4', 'SwinIR-8', 'RRDBNet-x1', 'RRDBNet-x2', 'RRDBNet-x4', 'VLUNet', 'DGUNet', 'VLURNet', 'EDSR'])
def test_the_size_rule_is_declared_or_derived_from_basicsr_options(network_g, rule):
    net = build_network(dict(network_g))
    assert size_rule(net) == rule
    assert size_rule(net, override=16) == SizeRule(16, rule.min_size)  # val.size_multiple overrides the multiple


def test_a_misdeclared_size_rule_is_named():
    class Misdeclared(torch.nn.Module):
        size_multiple = 0

    with pytest.raises(ValueError, match=r'Misdeclared.size_multiple must be a whole number >= 1; got 0'):
        size_rule(Misdeclared())


@pytest.mark.parametrize('size', [(5, 7), (13, 21), (16, 17), (24, 40)])
def test_one_padding_rule_pads_as_dgunet_pads_itself(size):
    x = torch.rand(1, 3, *size)
    assert torch.equal(pad_to_multiple(x, 8, 16)[0], pad_for_dgunet(x)[0])


def test_basicsr_archs_restore_odd_sizes_by_their_rule_and_up_scaling_ones_crop_by_the_scale():
    lq = torch.rand(1, 3, 37, 45)
    for network_g, scale in ((SWINIR, 1), ({**RRDB, 'scale': 1}, 1), ({**RRDB, 'scale': 2}, 2)):
        net = build_network(dict(network_g)).eval()
        with torch.no_grad():
            if size_rule(net).multiple > 1:
                with pytest.raises((RuntimeError, AssertionError)):  # what val.size_multiple had to prevent
                    net(lq)
            for tile in (None, 16) if scale == 1 else (None,):  # tiles are for restoration (scale 1) only
                output = restore_image(net, lq, tile, 4, size_rule=size_rule(net))
                assert output.shape == (1, 3, 37 * scale, 45 * scale)


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


@pytest.mark.parametrize('network_g, tile, rule', [
    (SWINIR, None, 'sides a multiple of 4'),
    ({**RRDB, 'scale': 1}, 20, 'sides a multiple of 4'),
], ids=['SwinIR', 'RRDBNet-x1-tiled'])
def test_basicsr_archs_train_and_validate_at_odd_sizes_through_basicsr_train(tmp_path, network_g, tile, rule):
    """Odd 37x45 images, 18 px training crops (not a multiple of 4 either), and no val.size_multiple.

    GuidedRestorationModel's datasets give LQ and GT of one size, so up-scaling archs (RRDBNet at scale 2) do not
    train in it; RRDBNet runs at scale 1 here, which pixel-unshuffles its input by 4."""
    gt, lq = write_image_pairs(tmp_path / 'data', count=2, size=(37, 45))
    datasets = degradation_datasets(gt, lq, seed=0)
    datasets['train']['gt_size'] = 18
    val = {'val_freq': 2, 'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr_float'}}}
    if tile:
        val.update(tile=tile, tile_overlap=4)
    opt = {'name': 'odd', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'manual_seed': 0,
           'datasets': datasets, 'network_g': dict(network_g), 'path': {}, 'val': val,
           'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 2, 'pixel_opt': {'type': 'L1Loss'},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}},
           'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}}
    work = tmp_path / 'work'
    work.mkdir()
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 'train.yml', opt)], cwd=work,
                   env_extra={'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = _log(work / 'experiments' / 'odd')
    assert f'Inputs padded to: {rule}.' in log
    assert 'Validation val_rain\n\t # psnr: ' in log and 'Validation val_noise' in log
    import cv2
    saved = cv2.imread(str(work / 'experiments' / 'odd' / 'visualization' / 'img00' / 'img00_2.png'))
    assert saved.shape == (37, 45, 3)


def test_an_override_that_breaks_the_arch_rule_is_warned_about():
    import logging

    from basicsr.models import build_model
    opt = {'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'rank': 0,
           'world_size': 1, 'name': 'unit', 'network_g': dict(SWINIR), 'network_clip': None,
           'path': {'pretrain_network_g': None}, 'val': {'size_multiple': 6}}
    records, handler = [], logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger('basicsr').addHandler(handler)
    try:
        model = build_model(opt)
    finally:
        logging.getLogger('basicsr').removeHandler(handler)
    assert model.size_rule == SizeRule(6)
    assert "val.size_multiple 6 is not a multiple of SwinIR's own size multiple, 4" in [r.getMessage() for r in records]


@pytest.mark.parametrize('network_g', [TINY_VLUNET, TINY_DGUNET, SWINIR, {'type': 'PromptIR', 'dim': 12,
                                                                      'num_blocks': [1, 1, 1, 1],
                                                                      'num_refinement_blocks': 1, 'prompt_size': 16}],
                         ids=['VLUNet', 'DGUNet', 'SwinIR', 'PromptIR'])
def test_an_odd_input_is_padded_once_whether_the_arch_or_the_model_pads(network_g, monkeypatch):
    """VLUNet and DGUNet pad themselves and declare no rule; SwinIR and PromptIR are padded by the model."""
    from basicsr.models import build_model
    from vlunet_basicsr.utils import padding
    pads = []
    pad = padding.pad_bottom_right

    def counted(x, pad_h, pad_w):
        if pad_h or pad_w:
            pads.append((pad_h, pad_w))
        return pad(x, pad_h, pad_w)

    monkeypatch.setattr(padding, 'pad_bottom_right', counted)
    model = build_model({'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'is_train': False, 'dist': False,
                         'rank': 0, 'world_size': 1, 'name': 'unit', 'network_g': dict(network_g),
                         'network_clip': None, 'path': {'pretrain_network_g': None}, 'val': {}})
    model.feed_data({'lq': torch.rand(1, 3, 37, 45)})
    model.test()
    assert model.output.shape[-2:] == (37, 45) and len(pads) == 1, pads


def test_a_padded_side_traced_for_export_is_a_multiple_the_shapes_below_it_simplify_with():
    """While exporting, the padded side is ``8 * ceil(h / 8)``, so the halved sides below it are ``4 * ceil(h / 8)``
    and so on; written ``h + (-h % 8)`` they nested a modulo in every shape and made the export four times slower."""

    class PadThenHalve(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.avg_pool2d(pad_to_multiple(x, 8)[0], 2)

    dynamic = torch.export.Dim.DYNAMIC
    program = torch.export.export(PadThenHalve(), (torch.rand(1, 3, 21, 26),),
                                  dynamic_shapes=({2: dynamic, 3: dynamic},), strict=False)
    output = [node for node in program.graph.nodes if node.op == 'output'][0].args[0][0].meta['val']
    assert not [side for side in output.shape[2:] if 'Mod' in str(side)], output.shape
    for size in ((21, 26), (8, 9), (5, 7)):
        assert program.module()(torch.rand(1, 3, *size)).shape[2:] == tuple((side + 7) // 8 * 4 for side in size)

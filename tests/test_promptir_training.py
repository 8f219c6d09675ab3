"""PromptIR end to end: options/train_promptir_nhrbl.yml and test_promptir_nhrbl.yml made tiny, trained and
tested through the real ``basicsr train`` / ``basicsr test`` on images whose sides are not multiples of 8;
``basicsr restore`` with that test file, whole and tiled; and ``basicsr export`` of a tiny PromptIR, ONNX Runtime
against torch at odd sizes."""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import torch
import yaml

import vlunet_basicsr  # noqa: F401
from conftest import REPO, TINY_PROMPTIR, run_cli, write_image_pairs, write_yaml
from vlunet_basicsr.utils.padding import pad_to_multiple

ENV = {'OMP_NUM_THREADS': '1'}
TINY = {key: value for key, value in TINY_PROMPTIR.items() if key != 'type'}
ODD = (27, 35)  # height, width: neither a multiple of 8


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def _tiny(name):
    opt = yaml.safe_load(open(osp.join(REPO, 'options', name)))
    opt['num_gpu'] = 0
    opt['network_g'].update(TINY)
    opt.pop('dist_params', None)
    return opt


def test_a_tiny_promptir_trains_and_tests_through_basicsr_on_odd_sizes(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    gt, lq = write_image_pairs(tmp_path / 'data', count=3, size=ODD)
    paired = {'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'disk'}}
    noisy = {'dataroot_gt': gt, 'io_backend': {'type': 'disk'}}

    train = _tiny('train_promptir_nhrbl.yml')
    data = train['datasets']
    sources = data['train']['sources']
    data['train'].update(gt_size=16, batch_size_per_gpu=2, num_worker_per_gpu=0,
                         sources=[{**sources[0], **noisy}, {**sources[7], **paired}])  # sigma 15 and rain
    for key in [k for k in data if k.startswith('val_')]:
        del data[key]
    data['val_1'] = {'name': 'odd_rain', 'type': 'PairedDegradationDataset', 'label': 4, **paired}
    train['train'].update(total_iter=3)
    train['train']['scheduler'].update(warmup_iter=1, total_iter=4)
    train['val']['val_freq'] = 3
    train['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 'train.yml', train)], cwd=work, env_extra=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = work / 'experiments' / 'train_promptir_nhrbl'
    log = _log(exp)
    assert 'Network PromptIR: unguided: net(lq); returns one image.' in log
    for it in (1, 2, 3):
        line = next(line for line in log.splitlines() if f'iter:{it:8,d},' in line)
        assert 'l_pix: ' in line, line
    assert 'Validation odd_rain\n\t # psnr: ' in log
    assert (exp / 'models' / 'net_g_3.pth').is_file()

    test = _tiny('test_promptir_nhrbl.yml')
    test['datasets'] = {'test_1': {**test['datasets']['test_2'], **paired},  # Rain100L
                        'test_2': {**test['datasets']['test_4'], **noisy}}  # CBSD68 sigma 25
    test['path']['pretrain_network_g'] = str(exp / 'models' / 'net_g_3.pth')
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'test.yml', test)], cwd=work, env_extra=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = work / 'results' / 'test_promptir_nhrbl'
    metrics = json.load(open(results / 'metrics.json'))
    assert set(metrics) == {'Rain100L', 'CBSD68_sigma25'}
    for name in metrics:
        assert metrics[name]['counts']['images'] == 3
        assert all(np.isfinite(metrics[name][key]) for key in ('psnr', 'ssim'))
    saved = cv2.imread(str(results / 'visualization' / 'Rain100L' / 'img00_test_promptir_nhrbl.png'))
    assert saved.shape == (*ODD, 3)


def test_restore_with_the_test_file_pads_to_the_multiple_and_crops_back(tmp_path, capsys):
    from basicsr.archs import build_network
    from conftest import restore_main
    from vlunet_basicsr.utils.padding import crop_to

    torch.manual_seed(0)
    net = build_network({'type': 'PromptIR', **TINY}).eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'net_g.pth')
    test = _tiny('test_promptir_nhrbl.yml')
    test['path']['pretrain_network_g'] = str(tmp_path / 'net_g.pth')
    opt = write_yaml(tmp_path / 'test.yml', test)
    image = np.random.default_rng(1).integers(0, 256, (*ODD, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'photo.png'), image)
    assert restore_main([str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'whole'), '-opt', opt]) == 0
    assert restore_main([str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'tiled'), '-opt', opt, '--tile', '16',
                         '--tile-overlap', '4']) == 0
    assert 'Network PromptIR: unguided' in capsys.readouterr().out
    lq = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    padded, size = pad_to_multiple(lq, 8)
    with torch.no_grad():
        expected = crop_to(net(padded), size).clamp(0, 1)[0].permute(1, 2, 0).numpy()[..., ::-1] * 255
    whole = cv2.imread(str(tmp_path / 'whole' / 'photo.png')).astype(np.float64)
    assert whole.shape == image.shape and np.abs(whole - expected).max() <= 1
    assert cv2.imread(str(tmp_path / 'tiled' / 'photo.png')).shape == image.shape


def test_promptir_export_matches_torch_at_odd_sizes(exported_promptir):
    from vlunet_basicsr.tools.export.onnx_runtime import load_onnx_networks
    from vlunet_basicsr.tools.restore.restorer import load_networks

    opt, model = exported_promptir  # conftest.TINY_PROMPTIR, verified at 24x24 (batch 2) and 13x21 by the export
    assert not model.with_name('model.guidance.onnx').exists()  # unguided: one graph
    torch_net, onnx_net = load_networks(opt).net, load_onnx_networks(str(model), 'cpu').net
    lq, _ = pad_to_multiple(torch.rand(2, 3, 9, 35, generator=torch.Generator().manual_seed(2)), 8)  # a new size
    with torch.no_grad():
        assert (onnx_net(lq) - torch_net(lq)).abs().max() <= 1e-4

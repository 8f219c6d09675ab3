"""One test per basicsr 1.4.2 workaround in vlunet_basicsr.compat; each fails without its fix."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import vlunet_basicsr  # noqa: F401
from basicsr.models.base_model import BaseModel
from conftest import free_port, write_yaml
from vlunet_basicsr.tools import options
from vlunet_basicsr.utils import distributed, resume


def _run_python(code, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_fix1_import_basicsr_works_after_vlunet_basicsr():
    """In a fresh interpreter: the order of the imports is what is tested."""
    proc = _run_python("""
        import vlunet_basicsr, sys
        import basicsr.data.degradations
        import torchvision.transforms.functional as F
        assert sys.modules['torchvision.transforms.functional_tensor'] is F
        print('imported')
    """)
    assert proc.returncode == 0, proc.stderr
    assert 'imported' in proc.stdout


def _dist_check(monkeypatch, launcher, env, **kwargs):
    """init_dist in this process without CUDA, then basicsr's model_to_device on a one-rank gloo group (destroyed
    after); the variables init_dist sets are given back by monkeypatch."""
    import types

    import torch.distributed as dist
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):  # absent unless given; init_dist
        monkeypatch.setenv(key, '')  # may set them: monkeypatch removes them again
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    distributed.init_dist(launcher, **kwargs)
    try:
        fake_model = types.SimpleNamespace(opt={'dist': True, 'num_gpu': 0}, device=torch.device('cpu'))
        net = BaseModel.model_to_device(fake_model, nn.Linear(2, 2))
        return dist.get_backend(), dist.get_rank(), dist.get_world_size(), type(net).__name__
    finally:
        dist.destroy_process_group()


def test_fix2_fix3_pytorch_launcher_and_ddp_on_cpu(monkeypatch):
    env = {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1',
           'MASTER_PORT': str(free_port())}
    # default backend without CUDA
    assert _dist_check(monkeypatch, 'pytorch', env) == ('gloo', 0, 1, 'DistributedDataParallel')


def test_fix2_slurm_launcher_honours_dist_params(tmp_path, monkeypatch):
    scontrol = tmp_path / 'scontrol'
    scontrol.write_text('#!/bin/sh\necho 127.0.0.1\n')
    scontrol.chmod(0o755)
    env = {'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'SLURM_NODELIST': 'node01', 'SLURM_LOCALID': '0',
           'PATH': f"{tmp_path}:{os.environ['PATH']}"}
    assert _dist_check(monkeypatch, 'slurm', env, backend='gloo', port=free_port())[:3] == ('gloo', 0, 1)


def test_fix2_nccl_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(RuntimeError, match="backend is 'nccl' but CUDA is not available"):
        distributed.init_dist('pytorch', backend='nccl')


def _save_states(states_dir, iterations):
    """Training states and, beside them as the pipeline writes them, the network files of the same iterations."""
    models_dir = os.path.join(os.path.dirname(states_dir), 'models')
    os.makedirs(states_dir, exist_ok=True)
    os.makedirs(models_dir, exist_ok=True)
    for it in iterations:
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [{'state': {0: {'exp_avg': torch.ones(2)}}}],
                    'schedulers': []}, os.path.join(states_dir, f'{it}.state'))
        torch.save({'params': {}}, os.path.join(models_dir, f'net_g_{it}.pth'))


def _resume_opt(root, name='exp', auto_resume=True, resume_state=None):
    experiments = os.path.join(root, 'experiments', name)
    return {'name': name, 'num_gpu': 0, 'auto_resume': auto_resume, 'network_g': {'type': 'X'},
            'path': {'training_states': os.path.join(experiments, 'training_states'),
                     'models': os.path.join(experiments, 'models'), 'resume_state': resume_state}}


def test_fix5_auto_resume_finds_states_under_the_experiment_root(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / 'root', tmp_path / 'elsewhere'
    elsewhere.mkdir()
    opt = _resume_opt(str(root))
    _save_states(opt['path']['training_states'], [2, 10, 4])
    monkeypatch.chdir(elsewhere)  # the working directory is not the experiment root
    state = resume.load_resume_state(opt)
    assert state is not None and state['iter'] == 10
    assert opt['path']['pretrain_network_g'].endswith('net_g_10.pth')


def test_fix4_resume_loads_onto_the_model_device(tmp_path):
    states = tmp_path / 'states'
    _save_states(str(states), [3])
    opt = _resume_opt(str(tmp_path), auto_resume=False, resume_state=str(states / '3.state'))
    state = resume.load_resume_state(opt)  # basicsr's version calls torch.cuda.current_device() here
    assert state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'


def test_fix6_any_torch_optimizer():
    params = [nn.Parameter(torch.zeros(3))]
    optimizer = BaseModel.get_optimizer(None, 'AdamW', params, 2e-4, betas=(0.9, 0.999))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert isinstance(BaseModel.get_optimizer(None, 'SGD', params, 0.1), torch.optim.SGD)
    with pytest.raises(ValueError, match="'Adamm' is not a torch.optim optimizer.*AdamW"):
        BaseModel.get_optimizer(None, 'Adamm', params, 0.1)


def _minimal_test_opt(path):
    return write_yaml(path, {
        'name': 'minimal', 'model_type': 'SRModel', 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'set', 'type': 'PairedImageDataset'}},
        'network_g': {'type': 'VLUNet'}, 'path': {}, 'val': {'save_img': True}})


def test_fix7_test_mode_defaults_val_suffix(tmp_path):
    opt, _ = options.parse_options(str(tmp_path), _minimal_test_opt(tmp_path / 'o.yml'), is_train=False)
    assert 'suffix' in opt['val'] and opt['val']['suffix'] is None


def test_fix8_local_rank_with_hyphen():
    from vlunet_basicsr_cli.parsers import pipeline_parser
    assert pipeline_parser().parse_args(['-opt', 'o.yml', '--local-rank=3']).local_rank == 3
    assert pipeline_parser().parse_args(['-opt', 'o.yml', '--local_rank', '2']).local_rank == 2


def test_apply_replaced_basicsr_pipeline_helpers():
    import basicsr.train
    assert basicsr.train.load_resume_state is resume.load_resume_state


def test_fix9_swinir_windows_keep_an_exported_batch_dynamic():
    from basicsr.archs import swinir_arch

    class Windows(torch.nn.Module):
        def forward(self, x):
            h, w = x.shape[1:3]
            return swinir_arch.window_reverse(swinir_arch.window_partition(x, 4) * 2, 4, h, w)

    dynamic = torch.export.Dim.DYNAMIC
    program = torch.export.export(Windows(), (torch.rand(2, 8, 12, 3),), dynamic_shapes=({0: dynamic},))
    one = torch.rand(1, 8, 12, 3)  # basicsr's own: "Guard failed: ... == 2" (the traced batch)
    assert torch.equal(program.module()(one), one * 2)

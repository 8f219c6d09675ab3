"""The tuned CPU allocator reuses freed memory: re-allocating large tensors faults in far fewer new pages."""
import sys

import pytest

import vlunet_basicsr  # noqa: F401
from conftest import run_code_in_a_fork
from vlunet_basicsr.tools import options
from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator

FAULTS = '''
import resource, torch
if MODE == 'tuned':
    from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator
    assert tune_cpu_allocator('tuned')
torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    torch.ones(64 << 20, dtype=torch.uint8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _faults(mode):
    """Page faults of re-allocating 64 MiB, in a process of its own: the tuning is for the process and cannot be
    undone ('system' is glibc's defaults, torch alone)."""
    proc = run_code_in_a_fork(f'MODE = {mode!r}\n{FAULTS}')
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc tuning')
def test_tuned_allocator_reuses_freed_memory():
    assert not tune_cpu_allocator('system')  # changes nothing
    tuned, system = _faults('tuned'), _faults('system')
    assert system > 8 * 16_000  # 64 MiB = 16,384 pages, faulted in again every time
    assert tuned < 0.75 * system  # measured here: about half


def test_bad_allocator_choice_names_the_option(tmp_path):
    with pytest.raises(ValueError, match='cpu_allocator must be one of tuned, system'):
        tune_cpu_allocator('jemalloc')
    opt_path = tmp_path / 'o.yml'
    opt_path.write_text('name: t\nmodel_type: VLUNetModel\nnum_gpu: 0\ncpu_allocator: fast\ndatasets: {}\n'
                        'network_g: {type: VLUNet}\npath: {}\n')
    with pytest.raises(ValueError, match=rf"{opt_path}:\n  cpu_allocator: 'fast' is not one of 'tuned', 'system'"):
        options.parse_options(str(tmp_path), str(opt_path), is_train=False)

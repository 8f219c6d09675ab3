"""BasicSR's train and test pipelines with this plugin: ``run('train'|'test', opt_path, ...)``.

The command line is parsed once, by its caller (``basicsr train|test``, ``python -m vlunet_basicsr.train``); the
option file is read once, by `vlunet_basicsr.tools.options.parse_options`, and handed to basicsr's pipeline in
place of basicsr's own parsing of ``sys.argv``. Experiments, results and tb_logger folders are created under
``root_path`` (default: the current working directory).
"""
import contextlib
import os

from vlunet_basicsr.tools.options.pipeline import parse_options


@contextlib.contextmanager
def _parsed_options(module, opt, args):
    """basicsr's pipelines call their module's ``parse_options(root_path, is_train)``: answer with ``opt``."""
    original = module.parse_options
    module.parse_options = lambda root_path, is_train=True: (opt, args)
    try:
        yield
    finally:
        module.parse_options = original


def run(command, opt_path, root_path=None, **flags):
    """Run one pipeline.

    Args:
        command (str): ``train`` or ``test``.
        opt_path (str): The option YAML.
        root_path (str | None): Where ``experiments/``, ``results/`` and ``tb_logger/`` go. Default: cwd.
        **flags: BasicSR's pipeline flags, as `parse_options` takes them (``launcher``, ``auto_resume``,
            ``debug``, ``force_yml``).
    """
    if command not in ('train', 'test'):
        raise ValueError(f"Unknown command '{command}'; expected train or test")
    import basicsr.test
    import basicsr.train
    root_path = os.getcwd() if root_path is None else root_path
    is_train = command == 'train'
    opt, args = parse_options(root_path, opt_path, is_train=is_train, **flags)
    module = basicsr.train if is_train else basicsr.test
    with _parsed_options(module, opt, args):
        if is_train:
            module.train_pipeline(root_path)
        else:
            module.test_pipeline(root_path)

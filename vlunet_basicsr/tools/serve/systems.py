"""The restoration systems a server offers: one per ``-opt`` YAML (or one from ``--weights``), loaded like
``basicsr restore`` loads one."""
import os.path as osp
from collections import namedtuple

#: One loaded system: its unique ``name`` (the YAML's ``name``, else the file's stem), the `Restorer`, the
#: names of its degradation classes (empty without a guidance encoder), whether it takes a degradation type
#: (text-guided, VL-UR) and whether it can explain itself (VLU-Net's per-stage trace).
System = namedtuple('System', ['name', 'restorer', 'class_names', 'text_guided', 'explains', 'description'])


def class_names(prompts):
    """Display names of the degradation classes: a known prompt set's label names, else the prompts."""
    from vlunet_basicsr.utils.prompts import label_names
    return list(label_names(prompts) or prompts)


def _unique(name, taken):
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f'{name}_{number}', number + 1
    return candidate


def load_systems(opt_paths, device, amp='none', tile=None, tile_overlap=32, trust_checkpoint=False, exported=None,
                 **sources):
    """Load every system, in the order given.

    Args:
        opt_paths (list[str] | None): Test YAMLs (``network_g``, ``network_clip``, ``path.pretrain_network_g``, ...).
        device (torch.device): Where the networks run.
        amp (str): 'none', 'bf16' or 'fp16'. Default: 'none'.
        tile (int | None): Restore in tiles of this size. Default: None.
        tile_overlap (int): Overlap of neighbouring tiles. Default: 32.
        trust_checkpoint (bool): Allow network files that need arbitrary unpickling. Default: False.
        exported (tuple | None): ``(backend, model.onnx, ov_precision, runtime device)``: one system, the graphs of
            ``basicsr export`` run by that runtime as ``basicsr restore --backend`` runs them (``device`` is then
            the host's CPU, where tensors meet the runtime).
            Default: None (the torch networks of the YAMLs or ``weights``).
        **sources: ``weights`` (one system without a YAML, named by the file), ``clip_weights``, ``adapter`` and
            ``clip_model``, as `vlunet_basicsr.tools.restore.restorer.load_networks` takes them (``basicsr restore``'s
            flags).

    Returns:
        list[System]: The loaded systems.

    Raises:
        ValueError: A YAML or its weights cannot be used; the message names the YAML (or the weights).
    """
    from vlunet_basicsr.tools.options.loading import load_yaml
    from vlunet_basicsr.tools.restore.restorer import Restorer, load_networks

    from vlunet_basicsr.tools.export.onnx_runtime import load_exported_networks

    systems = []
    for path in opt_paths or [None]:
        source = exported[1] if exported else path or sources.get('weights')
        try:
            opt = load_yaml(path) if path else {}
            if exported:
                backend, model, ov_precision, runtime_device = exported
                networks = load_exported_networks(backend, model, runtime_device, None, ov_precision)
            else:
                networks = load_networks(path, trust_checkpoint=trust_checkpoint, **sources)
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(str(error) if str(source) in str(error) else f'{source}: {error}') from error
        stem = osp.splitext(osp.basename(str(source)))[0]
        name = _unique(str(opt.get('name') or stem), {system.name for system in systems})
        restorer = Restorer(networks, device, amp, tile=tile, tile_overlap=tile_overlap)
        guided = networks.clip is not None
        systems.append(System(name, restorer, class_names(networks.prompts) if guided else [],
                              restorer.text_guided, networks.inputs.explains,
                              restorer.describe()))
    return systems

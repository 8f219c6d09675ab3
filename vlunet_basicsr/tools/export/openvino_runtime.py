"""OpenVINO as a runtime of `vlunet_basicsr.tools.export.onnx_runtime`: ``basicsr restore --backend openvino`` runs
the graphs ``basicsr export`` writes (the verified ONNX files) on the CPU, in the inference precision
``--ov-precision``.

``f32`` (the default) asks OpenVINO for float32 arithmetic (``INFERENCE_PRECISION_HINT``), which OpenVINO would
otherwise lower to bf16 on CPUs with bf16 units; ``bf16`` lets it run in bf16 there. The graph's metadata (the
project's format, prompts, size multiple) is read from the ONNX file with ``onnx``, since OpenVINO does not keep
ONNX metadata.
"""
import warnings

import numpy as np

#: ``--ov-precision`` values and the ``INFERENCE_PRECISION_HINT`` each sets.
PRECISIONS = {'f32': 'f32', 'bf16': 'bf16'}


def onnx_metadata(path):
    """The ``metadata_props`` of an ONNX file as a dict (the weights are not read)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


class OpenVinoSession:
    """A compiled OpenVINO model with ONNX Runtime's ``run([output names], feed)`` -> list of arrays."""

    def __init__(self, compiled, precision):
        self.compiled = compiled
        self.precision = precision
        self.request = compiled.create_infer_request()

    def run(self, output_names, feed):
        results = self.request.infer(feed)
        return [np.array(results[self.compiled.output(name)], dtype=np.float32) for name in output_names]


class OpenVinoRuntime:
    """OpenVINO on the CPU: ``open(path)`` -> (`OpenVinoSession`, metadata, input names).

    Args:
        precision (str): ``--ov-precision``: 'f32' or 'bf16'. bf16 on a CPU without bf16 units warns once and
            runs f32.
        device (str): 'auto' or 'cpu' (OpenVINO's CPU plugin); 'cuda' is refused. Default: 'auto'.
        num_threads (int | None): ``INFERENCE_NUM_THREADS``. Default: None (OpenVINO's choice).
    """

    def __init__(self, precision='f32', device='auto', num_threads=None):
        if precision not in PRECISIONS:
            raise ValueError(f"--ov-precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if device not in ('auto', 'cpu'):
            raise ValueError(f'--backend openvino runs on the CPU; --device {device} is for the torch and onnxruntime '
                             'backends')
        import openvino
        self.core = openvino.Core()
        if precision == 'bf16' and 'BF16' not in self.core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
            warnings.warn('--ov-precision bf16: this CPU has no bf16 units; running f32', RuntimeWarning,
                          stacklevel=2)
            precision = 'f32'
        self.precision = precision
        self.config = {'INFERENCE_PRECISION_HINT': PRECISIONS[precision]}
        if num_threads:
            self.config['INFERENCE_NUM_THREADS'] = int(num_threads)

    def open(self, path):
        meta = onnx_metadata(path)
        model = self.core.read_model(path)
        inputs = {name for port in model.inputs for name in port.get_names()}
        return OpenVinoSession(self.core.compile_model(model, 'CPU', self.config), self.precision), meta, inputs

    @staticmethod
    def describe(session):
        return f'OpenVINO on CPU, inference precision {session.precision}'

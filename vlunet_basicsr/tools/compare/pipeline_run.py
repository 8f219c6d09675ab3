"""``python -m vlunet_basicsr.tools.compare.pipeline_run ROOT train|test OPT``: one BasicSR pipeline whose
``experiments/``, ``results/`` and ``tb_logger/`` go under ROOT (the compare output), run from the user's folder
so that the YAMLs' relative paths and plugins resolve as for ``basicsr train|test``."""
import gc
import sys

from vlunet_basicsr.tools.pipelines import run

if __name__ == '__main__':
    run(sys.argv[2], sys.argv[3], root_path=sys.argv[1])
    gc.freeze()  # the process ends here: no last collection over torch's objects (as `basicsr`, vlunet_basicsr_cli)

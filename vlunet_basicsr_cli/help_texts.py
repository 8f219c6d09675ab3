"""The descriptions ``basicsr COMMAND --help`` prints.

This package never imports ``vlunet_basicsr`` before a command runs (that import registers, and so imports torch),
so the restore description names the readable extensions itself; ``tests/test_cli.py`` holds it to
``vlunet_basicsr.utils.image_extensions``.
"""
import textwrap

#: The extensions ``basicsr restore`` reads, as its help names them.
RESTORE_EXTENSIONS = ('png', 'jpg', 'jpeg', 'bmp', 'tif', 'tiff', 'webp')

COMMANDS = {
    'train': 'train a model from an option YAML (BasicSR train pipeline)',
    'test': 'test a model from an option YAML (BasicSR test pipeline)',
    'restore': 'restore your own images with a trained or released network (see "basicsr restore -h")',
    'export': 'write a restoration system as ONNX graphs, verified against torch (see "basicsr export -h")',
    'serve': 'a local web page to try the loaded systems on your own images (see "basicsr serve -h")',
    'compare': 'train and test several systems on the same test sets, in one report (see "basicsr compare -h")',
}

RESTORE_DESCRIPTION = 'Restore your own images with a trained or released VLU-Net.\n\n' + textwrap.fill(
    f"INPUT is an image or a folder ({', '.join(RESTORE_EXTENSIONS)}). Each output has the input's "
    "size and bit depth (8 or 16), stays grayscale if the input is, and keeps the input's alpha channel untouched. "
    "Results are PNG files in the output folder, named <stem>.png (<stem>_<ext>.png when inputs share a stem; "
    "<name>_2.png, ... when that name is already another input's result). No result ever replaces an input file: "
    "an input whose result would is refused by name. Images are read by the datasets' decoder: an empty, truncated "
    "(JPEG without its end marker, PNG without IEND) or corrupt file is named, the others are still restored, and "
    "the exit code is 1; a folder without images, or network weights that are missing, corrupt or unsafe, stop it "
    "with exit code 2. The predicted degradation of each image (zero-shot over the prompts with the tuned adapters) "
    "is printed and written to degradations.csv; --explain also saves, per image, the key-mixture weights of every "
    "stage and the gradient-step residual maps phi(x, keys) - y (the paper's degradation maps). Progress (images, "
    "and tiles with --tile) is shown on stderr.", width=112) + '\n'

EXPORT_DESCRIPTION = """Write the restoration network of a test YAML (or of --weights) as an ONNX graph with dynamic
batch, height and width, and for a guided system (VLU-Net, VL-UR) the guidance encoder as a second graph beside it
(MODEL.guidance.onnx: the CLIP image branch and its adapter; the prompts' text embeddings in its metadata).
The graphs pass onnx's checker, then run in ONNX Runtime (CPU) against torch at two sizes (the first at batch
2): the largest absolute differences are printed, and the files are kept only when all are within the
tolerance (exit code 1 otherwise). An existing MODEL.onnx (or guidance graph) is replaced only with --overwrite.
Run them with basicsr restore --backend onnxruntime --onnx MODEL.onnx.
"""

SERVE_DESCRIPTION = """Start a local web page (Gradio) to restore images with the systems of one or more test YAMLs
(or of --weights).

Upload images (or pick demo photographs), choose the systems, and see input and output side by side, the
predicted degradation with the confidence of each class, VLU-Net's per-stage key mixtures and residual maps
(explain), and download each result as a PNG of the input's size and bit depth. Restoration is the code path of
basicsr restore. Uploads and results stay in one temporary folder, removed when the server stops.
"""

COMPARE_DESCRIPTION = """Train and/or test several systems on the same test sets and write one report.

The compare file (docs/compare.md) declares the test sets once and lists the systems: a train YAML and/or a test
YAML, finished weights or a finished experiment folder each. Each system is trained (basicsr train) and tested
(basicsr test) on the shared sets with the float RGB PSNR/SSIM, in its own process, its experiments/ and results/
under the output folder; its parameters, MACs at 256x256, training-step and per-image inference time and the
accuracy of its predicted degradation are measured in the same run. A system that fails is reported with its
error and the others still run (exit code 1). The output folder gets report.md, report.json, psnr.png and
grid_<set>.png; an existing one is replaced only with --overwrite, and only if basicsr compare wrote it.
"""

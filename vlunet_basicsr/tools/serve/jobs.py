"""Restoring uploaded files with the chosen systems, the way ``basicsr restore`` does (no Gradio here).

Each file is read by the datasets' decoder (`vlunet_basicsr.utils.image_io.decode_image`) under the name the
user gave it, so a bad file is named as the user knows it; each result is written with the input's bit depth,
grayscale and alpha (`encode_like`) as ``<stem>_<system>.png`` in a new folder of the session.
"""
import os
import os.path as osp
import re
import tempfile
from collections import namedtuple

import cv2
import numpy as np

#: One restored image: the input's display ``name``, the ``system``'s name, 8-bit RGB views of the input and
#: the output (for the page), the full-depth result ``png``, the degradation readout (``bars``: class name ->
#: probability, ``predicted`` and ``used`` class names; empty without an encoder) and the ``--explain``
#: figures (mixture weights, residual maps; None when not asked for or not available).
Result = namedtuple('Result', ['name', 'system', 'input_view', 'output_view', 'png', 'bars', 'predicted', 'used',
                               'figures'])

#: The value of ``degradation_type`` that means: restore with the predicted type.
PREDICTED = 'predicted'


def safe_stem(name):
    """A file stem made of letters, digits, ``.``, ``-`` and ``_`` only (for names chosen by users)."""
    stem = re.sub(r'[^A-Za-z0-9._-]+', '_', osp.splitext(osp.basename(name))[0]).strip('._')
    return stem or 'image'


def read_upload(path, name, max_pixels=None):
    """Decode the uploaded file at ``path``; errors name ``name`` (the file's name on the user's side).

    Args:
        path (str): The uploaded file (in the server's temporary folder).
        name (str): The name to show in errors.
        max_pixels (int | None): Refuse larger images, read from the header before decoding. Default: None.

    Returns:
        DecodedImage: As `vlunet_basicsr.utils.image_io.decode_image` returns.

    Raises:
        ValueError: Not an image file, not decodable, or too large; names ``name``.
    """
    from vlunet_basicsr.utils.image_extensions import IMAGE_EXTENSIONS
    from vlunet_basicsr.utils.image_io import decode_image, header_size
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        raise ValueError(f"{name}: not an image file (accepted: {', '.join(IMAGE_EXTENSIONS)})")
    with open(path, 'rb') as f:
        content = f.read()
    if max_pixels:
        width, height = header_size(content, name)
        if width * height > max_pixels:
            raise ValueError(f'{name}: {width}x{height} pixels is more than this server takes ({max_pixels} pixels); '
                             'its --max-pixels sets the limit')
    return decode_image(content, name)


def view(rgb):
    """8-bit RGB of a float image, for display."""
    return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _write_rgb(path, rgb8):
    if not cv2.imwrite(path, np.ascontiguousarray(rgb8[..., ::-1])):
        raise OSError(f'cannot write {path}')
    return path


def check_degradation_type(systems, degradation_type):
    """The notes and errors about a hand-given degradation type for the chosen ``systems`` (empty when fine)."""
    from vlunet_basicsr.utils.prompts import prompt_label
    if degradation_type in (None, '', PREDICTED):
        return []
    guided = [system for system in systems if system.text_guided]
    if not guided:
        return [f'note: the degradation type {degradation_type!r} is ignored: none of the chosen systems is '
                'text-guided']
    errors = []
    for system in guided:
        try:
            prompt_label(degradation_type, system.restorer.prompts, f'{system.name}: degradation type')
        except ValueError as error:
            errors.append(f'error: {error}')
    return errors


def restore_files(files, systems, folder, degradation_type=None, explain=False, max_pixels=None, progress=None):
    """Restore every file with every system.

    Args:
        files (list[tuple[str, str]]): (name shown to the user, path) of each input.
        systems (list[System]): The chosen systems.
        folder (str): The session's folder; the results go to a new folder inside it.
        degradation_type (str | None): For text-guided systems: the type to restore with (label number, name
            or prompt), or None / 'predicted' for the predicted one. Default: None.
        explain (bool): VLU-Net systems: also draw the per-stage key mixtures and residual maps. Default: False.
        max_pixels (int | None): Refuse larger images. Default: None.
        progress (callable | None): ``progress(fraction, text)`` as the work goes on. Default: None.

    Returns:
        tuple[list[Result], list[str]]: The results, and the messages (``error: ...`` names the file or the
        system; ``note: ...``).
    """
    messages = check_degradation_type(systems, degradation_type)
    if any(message.startswith('error') for message in messages):
        return [], messages
    given = None if degradation_type in (None, '', PREDICTED) else degradation_type
    run_folder = tempfile.mkdtemp(prefix='run-', dir=folder)
    results, total, stems = [], max(1, len(files) * len(systems)), set()
    for index, (name, path) in enumerate(files):
        try:
            decoded = read_upload(path, name, max_pixels)
        except (OSError, ValueError) as error:
            messages.append(f'error: {error}')
            continue
        stem = safe_stem(name)
        while stem in stems:
            stem += '_'
        stems.add(stem)
        input_view = _write_rgb(osp.join(run_folder, f'{stem}_input_view.png'), view(decoded.rgb))
        height, width = decoded.rgb.shape[:2]
        for number, system in enumerate(systems):
            step = index * len(systems) + number
            restorer = system.restorer
            tiled = bool(restorer.tile) and max(height, width) > restorer.tile
            explain_here = explain and system.explains and not tiled
            if explain and system.explains and tiled:
                messages.append(f'note: {name} with {system.name}: no --explain figures for images larger than '
                                f'the tile size ({restorer.tile}): the trace runs on the whole image')
            text = f'{name} with {system.name}'

            def tile_progress(done, count, step=step, text=text):
                if progress is not None:
                    progress((step + done / count) / total, f'{text}: tile {done}/{count}')

            if progress is not None:
                progress(step / total, text)
            file_stem = f'{stem}_{safe_stem(system.name)}'
            png = osp.join(run_folder, f'{file_stem}.png')
            restoration, figures = restorer.restore_file(decoded, png, given if system.text_guided else None,
                                                         tile_progress, explain_here)
            output_view = _write_rgb(osp.join(run_folder, f'{file_stem}_view.png'), view(restoration.rgb))
            bars, predicted, used = {}, None, None
            prediction = restoration.prediction
            if prediction is not None:
                bars = dict(zip(system.class_names, prediction.probabilities))
                predicted = system.class_names[prediction.label]
                used = system.class_names[prediction.used_label]
            results.append(Result(name, system.name, input_view, output_view, png, bars, predicted, used, figures))
    if progress is not None:
        progress(1.0, 'done')
    if not results and not os.listdir(run_folder):
        os.rmdir(run_folder)
    return results, messages

"""The page: uploads, demo photographs, the systems to run, and per result a before/after slider, the predicted
degradation as confidence bars, VLU-Net's per-stage figures and the full-depth PNG to download.

Two API endpoints (what the page itself calls, and what ``gradio_client`` sees): ``/restore`` restores the
uploads with the chosen systems and shows the first result; ``/show_result`` shows another one.
"""
import os.path as osp

from vlunet_basicsr.tools.serve.jobs import PREDICTED, restore_files
from vlunet_basicsr.tools.serve.workspace import DEMO_PHOTOGRAPHS

#: The system fonts of the page (no web font is fetched).
FONTS = ['ui-sans-serif', 'system-ui', 'sans-serif']
MONO_FONTS = ['ui-monospace', 'monospace']


def result_key(result):
    """The selector's name of a result (a dict of `Result` fields)."""
    return f"{result['name']} · {result['system']}"


def describe(result):
    """One Markdown line about a result: what was predicted and what it was restored as."""
    line = f"- **{result['name']}** with **{result['system']}**"
    if result['bars']:
        line += f": {result['predicted']} (p={result['bars'][result['predicted']]:.2f})"
        if result['used'] != result['predicted']:
            line += f", restored as {result['used']}"
    else:
        line += ': unguided (no degradation readout)'
    return line


def theme():
    """Gradio's default theme with system fonts."""
    import gradio as gr
    return gr.themes.Default(font=FONTS, font_mono=MONO_FONTS)


def build_app(systems, workspace, max_pixels=None):
    """The Gradio Blocks of the page.

    Args:
        systems (list[System]): The loaded systems (`vlunet_basicsr.tools.serve.systems.load_systems`).
        workspace (Workspace): The server's temporary folder.
        max_pixels (int | None): Refuse larger images. Default: None.

    Returns:
        gradio.Blocks: The page (not launched).
    """
    import gradio as gr

    from vlunet_basicsr.utils.image_extensions import IMAGE_EXTENSIONS

    by_name = {system.name: system for system in systems}
    types = []
    for system in systems:
        types += [name for name in system.class_names if system.text_guided and name not in types]
    max_classes = max([len(system.class_names) for system in systems] + [1])

    def viewer(result, results):
        """The viewer's values for one result (a dict), or empty ones."""
        if result is None:
            return None, None, None, None, None, None
        same_image = [r for r in results if r['name'] == result['name']]
        gallery = [(result['input_view'], f"input: {result['name']}")] + [(r['output_view'], r['system'])
                                                                           for r in same_image]
        figures = result['figures'] or (None, None)
        return ((result['input_view'], result['output_view']), result['bars'] or None, gallery, *figures,
                result['png'])

    def restore(files, demos, chosen, degradation_type, explain, request: gr.Request, progress=gr.Progress()):
        session = request.session_hash
        folder = workspace.session_folder(session)
        inputs = []
        for path in files or []:
            if not workspace.contains(path):
                raise gr.Error(f'{osp.basename(path)}: not an upload of this session')
            inputs.append((osp.basename(path), path))
        workspace.remember_uploads(session, [path for _, path in inputs])
        for name in demos or []:
            if name not in DEMO_PHOTOGRAPHS:
                raise gr.Error(f'unknown demo photograph {name!r}')
            inputs.append((f'{name}.png', workspace.demo_photograph(name)))
        if not inputs:
            raise gr.Error('upload an image or choose a demo photograph')
        unknown = [name for name in chosen or [] if name not in by_name]
        if unknown or not chosen:
            raise gr.Error(f"choose one or more of the systems {', '.join(by_name)}" +
                           (f" (unknown: {', '.join(map(str, unknown))})" if unknown else ''))
        results, messages = restore_files(
            inputs, [by_name[name] for name in chosen], folder, degradation_type, bool(explain), max_pixels,
            lambda fraction, text: progress(fraction, desc=text))
        if not results:
            raise gr.Error('; '.join(messages) or 'nothing was restored')
        for message in messages:
            if message.startswith('error'):
                gr.Warning(message)
        state = [result._asdict() for result in results]
        status = '\n'.join([describe(result) for result in state] + [f'- {message}' for message in messages])
        keys = [result_key(result) for result in state]
        return (status, gr.Dropdown(choices=keys, value=keys[0]), state, *viewer(state[0], state),
                [result['png'] for result in state])

    def show(key, state):
        chosen = next((result for result in state or [] if result_key(result) == key), None)
        return viewer(chosen, state or [])

    with gr.Blocks(title='basicsr serve', analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown('## Image restoration\n' + '\n'.join(f'- **{s.name}**: {s.description}' for s in systems))
        with gr.Row():
            with gr.Column(scale=1):
                # no file_types: Gradio would refuse the whole call for one other file; jobs names that file
                files = gr.File(label=f"Images ({', '.join(ext[1:] for ext in IMAGE_EXTENSIONS)})",
                                file_count='multiple', type='filepath', elem_id='uploads')
                demos = gr.Dropdown(list(DEMO_PHOTOGRAPHS), value=[], multiselect=True,
                                    label='Demo photographs (scikit-image)')
                chosen = gr.CheckboxGroup([s.name for s in systems], value=[systems[0].name], label='Systems')
                degradation_type = gr.Dropdown([PREDICTED] + types, value=PREDICTED, visible=bool(types),
                                               label='Degradation type of text-guided systems (VL-UR)')
                explain = gr.Checkbox(False, label='Explain (VLU-Net: key mixtures and residual maps per stage)',
                                      visible=any(s.explains for s in systems))
                button = gr.Button('Restore', variant='primary', elem_id='restore')
                status = gr.Markdown(elem_id='status')
            with gr.Column(scale=2):
                selector = gr.Dropdown([], label='Result (image · system)', interactive=True)
                slider = gr.ImageSlider(label='Before / after', type='filepath', format='png', elem_id='slider')
                bars = gr.Label(label='Predicted degradation', num_top_classes=max_classes, elem_id='bars')
        comparison = gr.Gallery(label='The input and each system', columns=4, height='auto', format='png')
        with gr.Accordion('Explain (VLU-Net, images up to the tile size)', visible=any(s.explains for s in systems)):
            with gr.Row():
                mixture = gr.Image(label='Key-mixture weights per stage', type='filepath')
                residuals = gr.Image(label='Gradient-step residual maps per stage', type='filepath')
        download = gr.File(label='This result (PNG, full size and bit depth)', elem_id='download')
        everything = gr.File(label='All results', file_count='multiple')
        state = gr.State([])
        view_outputs = [slider, bars, comparison, mixture, residuals, download]
        button.click(restore, [files, demos, chosen, degradation_type, explain],
                     [status, selector, state, *view_outputs, everything], api_name='restore',
                     concurrency_limit=1)
        selector.change(show, [selector, state], view_outputs, api_name='show_result')

        def end(request: gr.Request):
            workspace.end_session(request.session_hash)

        page.unload(end)
    return page

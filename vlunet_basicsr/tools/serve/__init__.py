"""``basicsr serve``: a local web page (Gradio) to try the loaded restoration systems on your own images.

One job per module: `systems` loads each ``-opt`` YAML through `vlunet_basicsr.tools.restore.restorer` (the code path of
``basicsr restore``, so there is no second way of restoring), `workspace` owns the server's temporary folder
(uploads, results, per-session folders) and the demo photographs, `jobs` restores uploaded files with the
chosen systems (no Gradio there), `app` lays out the page and `server` starts and stops it. The arguments are
parsed by `vlunet_basicsr_cli.parsers.serve_parser`.
"""

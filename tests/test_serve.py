"""basicsr serve: the page's HTTP API (gradio_client) against basicsr restore, bad and oversized uploads, client paths,
the temporary folder, and the page in headless Chromium (Debian's package)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import (REPO, TINY_CLIP_NET, TINY_VLUNET, TINY_VLUR, basicsr_command, free_port, restore_main, run_cli,
                      run_front_door, write_yaml)
from vlunet_basicsr.tools.serve.jobs import check_degradation_type, restore_files
from vlunet_basicsr.tools.serve.systems import load_systems
from vlunet_basicsr.tools.serve.workspace import Workspace
from vlunet_basicsr_cli.parsers import serve_parser

gradio_client = pytest.importorskip('gradio_client', reason='basicsr serve needs gradio and gradio_client '
                                    '(pip install gradio gradio_client)')
httpx = pytest.importorskip('httpx')

TILE = ['--tile', '48', '--tile-overlap', '8']
MAX_PIXELS = 20000
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']


def _clip_files(root):
    """Fixed weights for the tiny CLIP (random ones would differ between the server and basicsr restore)."""
    from basicsr.archs import build_network
    torch.manual_seed(0)
    clip = build_network(dict(TINY_CLIP_NET))
    torch.save(clip.backbone.state_dict(), root / 'clip.pth')
    adapters = {k: v for k, v in clip.state_dict().items() if k.startswith(('image_adapter.', 'text_adapter.'))}
    torch.save({'params': adapters}, root / 'adapter.pth')
    return {**TINY_CLIP_NET, 'pretrained': str(root / 'clip.pth'), 'adapter_path': str(root / 'adapter.pth')}


def _system_yaml(root, name, network_g, network_clip, prompts=None):
    from basicsr.archs import build_network
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(network_g)).state_dict()}, root / f'{name}.pth')
    opt = {'name': name, 'model_type': 'GuidedRestorationModel', 'network_g': dict(network_g),
           'network_clip': network_clip, 'path': {'pretrain_network_g': str(root / f'{name}.pth')}}
    if prompts:
        opt['prompts'] = prompts
    return write_yaml(root / f'{name}.yml', opt)


@pytest.fixture(scope='module')
def systems(tmp_path_factory):
    root = tmp_path_factory.mktemp('serve')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / 'wide.png'), rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # tiled (60 > 48)
    cv2.imwrite(str(images / 'deep.png'), rng.integers(0, 65536, (24, 16, 3), dtype=np.uint16))
    cv2.imwrite(str(images / 'big.png'), rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))  # > MAX_PIXELS
    (images / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    cv2.imwrite(str(images / 'heavy.png'), rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))  # 360 KB > 250kb
    (images / 'notes.txt').write_text('not an image\n')
    clip = _clip_files(root)
    return {'root': root, 'images': images, 'vlunet': _system_yaml(root, 'tiny_vlunet', TINY_VLUNET, clip),
            'vlur': _system_yaml(root, 'tiny_vlur', TINY_VLUR, clip, 'cdd11')}


def start_server(root, args, env):
    """Start ``basicsr serve ARGS`` in ``root`` with its TMPDIR ``root/tmp`` (empty again once it stops); wait
    until it answers; return what the tests use of it (stop it with `stop_server`)."""
    port = free_port()
    log_path = root / 'server.log'
    tmp = root / 'tmp'
    tmp.mkdir()
    env = dict(env, PYTHONUNBUFFERED='1', GRADIO_ANALYTICS_ENABLED='False', NO_PROXY='127.0.0.1,localhost',
               TMPDIR=str(tmp))
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([basicsr_command(), 'serve', *args, '--port', str(port)], cwd=root, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + 240
    while True:
        text = log_path.read_text()
        if proc.poll() is not None:
            pytest.fail(f'basicsr serve exited with {proc.returncode}:\n{text[-3000:]}')
        try:
            if 'temporary folder:' in text and httpx.get(url, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f'basicsr serve did not answer at {url} within 240 s:\n{text[-3000:]}')
        time.sleep(0.5)
    workspace = text.split('temporary folder:')[1].split()[0]
    assert workspace.startswith(str(tmp))
    return {'url': url, 'proc': proc, 'root': workspace, 'log': log_path, 'tmp': tmp}


def stop_server(server):
    """SIGTERM, as a user's Ctrl-C would, when the server still runs (then kill after 30 s)."""
    if server['proc'].poll() is None:
        server['proc'].terminate()
        try:
            server['proc'].wait(30)
        except subprocess.TimeoutExpired:
            server['proc'].kill()
            server['proc'].wait(30)


@pytest.fixture(scope='module')
def server(systems):
    """``basicsr serve`` of both tiny systems, whose environment does not name torch's cache folder (the pytest
    process's torch set TORCHINDUCTOR_CACHE_DIR for itself: a user's shell has none)."""
    env = {key: value for key, value in os.environ.items() if key != 'TORCHINDUCTOR_CACHE_DIR'}
    server = start_server(systems['root'], ['-opt', systems['vlunet'], '-opt', systems['vlur'], '--device', 'cpu',
                                            '--max-pixels', str(MAX_PIXELS), '--max-file-size', '250kb', *TILE], env)
    yield server
    stop_server(server)  # when the last test did not run: stop it the same way, so it cleans up


@pytest.fixture
def client(server, tmp_path):
    return gradio_client.Client(server['url'], verbose=False, download_files=str(tmp_path / 'downloads'),
                                analytics_enabled=False)


def _restore(client, files, chosen, degradation_type='predicted', explain=False, demos=()):
    return client.predict([gradio_client.handle_file(str(f)) for f in files], list(demos), chosen, degradation_type,
                          explain, api_name='/restore')


def _basicsr_restore(systems, tmp_path, name, *extra):
    out = tmp_path / 'restore'
    folder = tmp_path / f'in_{name}'
    folder.mkdir(parents=True)
    shutil.copy(systems['images'] / name, folder / name)
    assert restore_main([str(folder), '-o', str(out), *TILE, '--device', 'cpu', *extra]) == 0
    return cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED), out


def _confidences(label):
    return {item['label']: item['confidence'] for item in label['confidences']}


def test_the_api_restores_like_basicsr_restore_with_bars_and_explain(systems, client, tmp_path):
    """The result files of /restore are pixel for pixel those of basicsr restore (8 and 16 bit, tiled and whole),
    the bars are its probabilities, and /show_result gives VLU-Net's figures for the image that was not tiled."""
    status, selector, slider, bars, gallery, mixture, residuals, download, everything = _restore(
        client, [systems['images'] / 'wide.png', systems['images'] / 'deep.png'], ['tiny_vlunet'], explain=True)
    assert [os.path.basename(p) for p in everything] == ['wide_tiny_vlunet.png', 'deep_tiny_vlunet.png']
    for name, path in zip(('wide.png', 'deep.png'), everything):
        expected, out = _basicsr_restore(systems, tmp_path, name, '-opt', systems['vlunet'])
        result = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert result.dtype == expected.dtype and np.array_equal(result, expected), name
    assert cv2.imread(everything[1], cv2.IMREAD_UNCHANGED).dtype == np.uint16
    with open(out / 'degradations.csv') as f:
        header, *rows = [line.strip().split(',') for line in f]
    deep = dict(zip(header, next(row for row in rows if row[0] == 'deep.png')))
    assert 'wide.png with tiny_vlunet' in status and 'no --explain figures' in status  # 60 > tile 48
    assert mixture is None and os.path.basename(download) == 'wide_tiny_vlunet.png'
    assert selector['value'] == 'wide.png · tiny_vlunet'  # the selector's new choices: one per image and system
    assert [key for key, _ in selector['choices']] == ['wide.png · tiny_vlunet', 'deep.png · tiny_vlunet']
    assert len(gallery) == 2 and len(slider) == 2 and cv2.imread(slider[1]).shape == (40, 60, 3)
    slider_2, bars_2, gallery_2, mixture_2, residuals_2, download_2 = client.predict(
        'deep.png · tiny_vlunet', api_name='/show_result')
    assert cv2.imread(download_2, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    confidences = _confidences(bars_2)
    assert len(confidences) == 7 and abs(sum(confidences.values()) - 1) < 1e-4
    assert confidences['noise15'] == pytest.approx(float(deep['image with noise']), abs=1e-4)
    assert cv2.imread(mixture_2) is not None and cv2.imread(residuals_2) is not None
    assert len(_confidences(bars)) == 7


def test_vlur_restores_with_the_type_given_by_hand(systems, client, tmp_path):
    status, *_, everything = _restore(client, [systems['images'] / 'deep.png'], ['tiny_vlunet', 'tiny_vlur'],
                                      degradation_type='low_haze')
    assert [os.path.basename(p) for p in everything] == ['deep_tiny_vlunet.png', 'deep_tiny_vlur.png']
    expected, _ = _basicsr_restore(systems, tmp_path, 'deep.png', '-opt', systems['vlur'], '--degradation-type',
                                   'low_haze')
    assert np.array_equal(cv2.imread(everything[1], cv2.IMREAD_UNCHANGED), expected)
    predicted, _ = _basicsr_restore(systems, tmp_path / 'p', 'deep.png', '-opt', systems['vlur'])
    assert not np.array_equal(predicted, expected)  # the type given by hand changed the result
    assert 'restored as low_haze' in status
    with pytest.raises(gradio_client.exceptions.AppError, match='fog is not in the list of choices'):
        _restore(client, [systems['images'] / 'deep.png'], ['tiny_vlur'], degradation_type='fog')


def test_bad_and_oversized_files_are_named(systems, client):
    status, *_, everything = _restore(client, [systems['images'] / n for n in ('broken.png', 'big.png', 'deep.png')],
                                      ['tiny_vlunet'])
    assert [os.path.basename(p) for p in everything] == ['deep_tiny_vlunet.png']
    assert 'cannot decode image broken.png' in status
    assert f'big.png: 200x150 pixels is more than this server takes ({MAX_PIXELS} pixels)' in status
    with pytest.raises(gradio_client.exceptions.AppError, match='broken.png'):
        _restore(client, [systems['images'] / 'broken.png'], ['tiny_vlunet'])


def _peak_rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(next(line for line in f if line.startswith('VmHWM:')).split()[1])


def test_decompression_bombs_are_refused_by_the_limit_with_the_memory_bounded(systems, server, client, bombs):
    """The bombs' headers are read before any decoding: the server's peak memory hardly moves."""
    before = _peak_rss_kb(server['proc'].pid)
    status, *_, everything = _restore(client, [bombs['bomb14000'], bombs['header20000'], bombs['bomb40000'],
                                               systems['images'] / 'deep.png'], ['tiny_vlunet'])
    assert [os.path.basename(p) for p in everything] == ['deep_tiny_vlunet.png']
    for name, size in (('bomb14000', '14000x14000'), ('header20000', '20000x20000'), ('bomb40000', '40000x40000')):
        assert f'{name}.png: {size} pixels is more than this server takes ({MAX_PIXELS} pixels)' in status, status
    assert 'corrupt' not in status
    growth = _peak_rss_kb(server['proc'].pid) - before
    assert growth < 200_000, f'the server peak RSS grew by {growth} kB'  # the 14000x14000 bomb alone: ~4 GB


def test_a_text_file_is_named_and_the_images_beside_it_restored(systems, client):
    status, *_, everything = _restore(client, [systems['images'] / 'notes.txt', systems['images'] / 'deep.png'],
                                      ['tiny_vlunet'])
    assert [os.path.basename(p) for p in everything] == ['deep_tiny_vlunet.png']
    assert 'notes.txt: not an image file (accepted: .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp)' in status


def test_uploads_over_the_size_limit_are_refused_by_the_server(systems, server):
    heavy = (systems['images'] / 'heavy.png').read_bytes()
    assert len(heavy) > 250 * 1024
    response = httpx.post(server['url'] + 'gradio_api/upload', files={'files': ('heavy.png', heavy, 'image/png')},
                          timeout=30)
    assert response.status_code == 413
    assert not any('heavy.png' in files for _, _, files in os.walk(server['root']))
    small = (systems['images'] / 'big.png').read_bytes()
    response = httpx.post(server['url'] + 'gradio_api/upload', files={'files': ('big.png', small, 'image/png')},
                          timeout=30)
    assert response.status_code == 200 and response.json()[0].startswith(server['root'])


def test_a_demo_photograph_is_the_server_copy_and_obeys_the_pixel_limit(client):
    # coffee (600x400) is over this server's limit: the refusal shows the demo was read from the server's own copy
    with pytest.raises(gradio_client.exceptions.AppError, match=r'coffee.png: 600x400 pixels is more than'):
        _restore(client, [], ['tiny_vlur'], demos=['coffee'])


def _call(server, payload):
    """POST a raw /restore call and read its event stream (what a client other than gradio_client may send)."""
    response = httpx.post(server['url'] + 'gradio_api/call/restore', json={'data': payload}, timeout=30)
    assert response.status_code == 200, response.text
    event = response.json()['event_id']
    return httpx.get(f"{server['url']}gradio_api/call/restore/{event}", timeout=60).text


def test_client_given_paths_do_not_reach_the_server_files(systems, server):
    secret = systems['vlunet']
    stream = _call(server, [[{'path': secret, 'meta': {'_type': 'gradio.FileData'}}], [], ['tiny_vlunet'],
                            'predicted', False])
    assert 'event: error' in stream and 'network_g' not in stream
    stream = _call(server, [[], ['../../etc/passwd'], ['tiny_vlunet'], 'predicted', False])
    assert 'event: error' in stream and 'root:' not in stream
    for route in (f'gradio_api/file={secret}', f'file={secret}', 'gradio_api/file=/etc/passwd'):
        response = httpx.get(server['url'] + route, timeout=30)
        assert response.status_code in (403, 404) and 'network_g' not in response.text, route


def test_restore_files_reports_progress_over_tiles_and_checks_the_type(systems, tmp_path):
    system, vlur = load_systems([systems['vlunet'], systems['vlur']], torch.device('cpu'), tile=16, tile_overlap=4)
    results, messages = restore_files([('wide.png', str(systems['images'] / 'wide.png'))], [system, vlur],
                                      str(tmp_path), degradation_type='image with rain')  # a prompt of the release
    assert results == [] and messages[0].startswith('error: tiny_vlur: degradation type must be a label 0-10')
    assert check_degradation_type([system], 'haze') == ["note: the degradation type 'haze' is ignored: none of the "
                                                        'chosen systems is text-guided']
    calls = []
    results, messages = restore_files([('wide.png', str(systems['images'] / 'wide.png'))], [system], str(tmp_path),
                                      progress=lambda fraction, text: calls.append((fraction, text)))
    assert len(results) == 1 and messages == []
    tiles = [text for _, text in calls if ': tile ' in text]  # 40x60 in tiles of 16 overlapping by 4: 3x5
    assert tiles == [f'wide.png with tiny_vlunet: tile {n}/15' for n in range(1, 16)]
    assert [fraction for fraction, _ in calls] == sorted(fraction for fraction, _ in calls) and calls[-1][0] == 1


def test_serve_loads_a_system_from_weights_alone_as_restore_does(systems):
    root = systems['root']
    from_yaml, = load_systems([systems['vlunet']], torch.device('cpu'))
    from_weights, = load_systems(None, torch.device('cpu'), weights=str(root / 'tiny_vlunet.pth'))
    assert from_weights.name == 'tiny_vlunet' and from_weights.explains
    assert type(from_weights.restorer.net) is type(from_yaml.restorer.net)
    net_state, yaml_state = from_weights.restorer.net.state_dict(), from_yaml.restorer.net.state_dict()
    assert net_state.keys() == yaml_state.keys() and all(torch.equal(net_state[k], yaml_state[k]) for k in net_state)


def test_workspace_keeps_sessions_inside_and_removes_them(tmp_path):
    workspace = Workspace(str(tmp_path))
    folder = workspace.session_folder('abc123')
    upload = os.path.join(workspace.uploads, 'f00', 'photo.png')
    os.makedirs(os.path.dirname(upload))
    open(upload, 'wb').close()
    workspace.remember_uploads('abc123', [upload])
    assert workspace.contains(folder) and not workspace.contains(os.path.join(workspace.root, '..', 'x'))
    os.symlink('/etc', os.path.join(workspace.root, 'link'))
    assert not workspace.contains(os.path.join(workspace.root, 'link', 'passwd'))
    with pytest.raises(ValueError, match='invalid session id'):
        workspace.session_folder('../escape')
    from skimage import data
    coffee = cv2.imread(workspace.demo_photograph('coffee'))[..., ::-1]
    assert np.array_equal(coffee, data.coffee()) and workspace.contains(workspace.demo_photograph('coffee'))
    with pytest.raises(ValueError, match='unknown demo photograph'):
        workspace.demo_photograph('../../etc/passwd')
    workspace.end_session('abc123')
    assert not os.path.exists(folder) and not os.path.exists(upload) and not os.path.exists(os.path.dirname(upload))
    workspace.remove()
    assert not os.path.exists(workspace.root)


def test_a_bad_option_file_stops_the_server_naming_it(tmp_path):
    proc = run_cli(['serve', '-opt', tmp_path / 'missing.yml', '--device', 'cpu'], cwd=tmp_path,
                   env_extra={'TMPDIR': tmp_path})
    assert proc.returncode == 2 and f"Option file not found: {tmp_path / 'missing.yml'}" in proc.stderr
    assert os.listdir(tmp_path) == []  # its temporary folder is gone too


def test_serve_help_and_defaults_without_torch_or_gradio(tmp_path):
    args = serve_parser().parse_args(['-opt', 'a.yml'])
    assert (args.host, args.port, args.max_file_size, args.max_pixels, args.tile) == ('127.0.0.1', 7860, '25mb',
                                                                                      40_000_000, 512)
    proc, imported = run_front_door(['serve', '--help'], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'usage: basicsr serve' in proc.stdout and not imported & {'torch', 'gradio'}, sorted(imported)
    with pytest.raises(SystemExit):
        serve_parser().parse_args(['--port', '1'])  # a network is required: -opt or --weights


def test_serve_takes_the_network_sources_of_restore():
    args = serve_parser().parse_args(['--weights', 'net_g.pth', '--adapter', 'a.pth', '--clip-model', 'RN50'])
    assert (args.opt, args.weights, args.adapter, args.clip_model) == (None, 'net_g.pth', 'a.pth', 'RN50')
    assert serve_parser().parse_args(['-opt', 'a.yml', '-opt', 'b.yml']).opt == ['a.yml', 'b.yml']
    with pytest.raises(SystemExit):
        serve_parser().parse_args(['-opt', 'a.yml', '--weights', 'net_g.pth'])


def _chromium():
    """Debian's chromium, which `make test` installs before pytest when it is missing (scripts/install_browser.sh);
    the test is skipped, naming why, where it is absent, unless VLUNET_REQUIRE_BROWSER=1 (CI) makes that a failure."""
    path = shutil.which('chromium') or ('/usr/bin/chromium' if os.path.exists('/usr/bin/chromium') else None)
    if path:
        return path
    message = ("Debian's chromium is not installed: `make test` installs it (scripts/install_browser.sh, apt-get as "
               'root), or run: apt-get install chromium chromium-driver')
    if os.environ.get('VLUNET_REQUIRE_BROWSER') == '1':
        pytest.fail(message + ' (VLUNET_REQUIRE_BROWSER=1)')
    pytest.skip(message)


def _upload(page, photo):
    """Give the page's file input the photo and wait until the file list shows it. The list's cell holds the name
    split in two (stem, extension) and says it whole only in its aria-label, so it is found by role and name;
    matching the text "coffee.png" found only the upload's transient progress line, which a fast upload can
    remove before the wait starts (what failed in three CI runs: the page listed the file, the test missed it)."""
    listed = page.locator('#uploads').get_by_role('cell', name=photo.name, exact=True)
    assert listed.count() == 0
    page.locator('#uploads input[type=file]').set_input_files(str(photo), timeout=120000)
    listed.wait_for(timeout=120000)


def test_the_page_in_headless_chromium(systems, server, tmp_path):
    sync_api = pytest.importorskip('playwright.sync_api', reason='the browser test needs playwright (pip install '
                                   'playwright; its browser download is not used)')
    executable = _chromium()
    photo = tmp_path / 'coffee.png'
    from skimage import data
    cv2.imwrite(str(photo), cv2.resize(data.coffee(), (150, 100), interpolation=cv2.INTER_AREA)[..., ::-1])
    elsewhere, seen = [], []  # seen: what the page logged and fetched, shown when a step times out
    sessions = os.path.join(server['root'], 'sessions')
    before = set(os.listdir(sessions))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS,
                                             timeout=60000)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1500})
            page.on('request', lambda request: None if request.url.startswith(('http://127.0.0.1', 'data:', 'blob:'))
                    else elsewhere.append(request.url))
            page.on('console', lambda message: seen.append(f'console {message.type}: {message.text}'))
            page.on('pageerror', lambda error: seen.append(f'page error: {error}'))
            page.on('requestfailed', lambda request: seen.append(f'failed: {request.method} {request.url} '
                                                                 f'{request.failure}'))
            page.on('response', lambda response: seen.append(f'{response.status} {response.request.method} '
                                                             f'{response.url}'))
            page.goto(server['url'], timeout=60000)
            page.locator('#restore').wait_for(timeout=120000)  # the app has rendered
            _upload(page, photo)
            page.locator('#restore').click()
            page.locator('#status').get_by_text('coffee.png with tiny_vlunet').first.wait_for(timeout=120000)
            slider_images = page.locator('#slider img')
            slider_images.last.wait_for(timeout=120000)
            loaded = page.wait_for_function(
                'n => [...document.querySelectorAll("#slider img")].filter(i => i.complete && i.naturalWidth > 0)'
                '.length >= n', arg=2, timeout=120000)
            assert loaded
            sizes = slider_images.evaluate_all('images => images.map(i => [i.naturalWidth, i.naturalHeight])')
            assert [150, 100] in sizes, sizes
            bars = page.locator('#bars')
            for name in ('noise15', 'haze', 'low light'):
                assert bars.get_by_text(name, exact=True).count() >= 1, name
            assert bars.get_by_text('%').count() >= 7  # a confidence per class
            page.screenshot(path=str(tmp_path / 'serve.png'), full_page=True)
            link = page.locator('#download a[download]').first
            assert link.get_attribute('download', timeout=120000) == 'coffee_tiny_vlunet.png'
            png = page.request.get(link.get_attribute('href'), timeout=120000).body()  # what the link downloads
            assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).shape == (100, 150, 3)
            if os.environ.get('VLUNET_SERVE_SCREENSHOT'):  # docs/serve.png: the top of the page
                page.screenshot(path=os.environ['VLUNET_SERVE_SCREENSHOT'], clip={'x': 0, 'y': 0, 'width': 1400,
                                                                                 'height': 1110})
            session = set(os.listdir(sessions)) - before
            assert len(session) == 1  # this page's session folder
            page.close(run_before_unload=True)
        except sync_api.TimeoutError:
            page.screenshot(path=str(tmp_path / 'timeout.png'), full_page=True)
            pytest.fail('a page step timed out; the page logged and fetched:\n' + '\n'.join(seen[-60:]) +
                        f"\nscreenshot: {tmp_path / 'timeout.png'}\nserver log:\n{server['log'].read_text()[-2000:]}")
        finally:
            browser.close()
    assert cv2.imread(str(tmp_path / 'serve.png')) is not None
    assert elsewhere == []  # nothing fetched from anywhere but the server
    deadline = time.monotonic() + 30
    while set(os.listdir(sessions)) & session and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(os.listdir(sessions)) & session, 'the session folder outlived the closed page'


def test_stopping_the_server_removes_its_temporary_folder(server):
    """Runs last: SIGTERM ends the server cleanly and nothing it was given stays on disk; TMPDIR is left empty
    (torch's cache folder, made there when the server imported torch, went with the server's own)."""
    assert os.path.isdir(server['root'])
    server['proc'].send_signal(signal.SIGTERM)
    assert server['proc'].wait(60) == 0
    assert not os.path.exists(server['root']) and os.listdir(server['tmp']) == []
    assert 'temporary folder removed' in server['log'].read_text()

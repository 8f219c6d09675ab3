"""The server's temporary folder: everything a user uploads or gets back lives under it, and nothing else.

Layout under one ``tempfile.mkdtemp`` folder: ``gradio/`` (Gradio's upload and file cache, set through
``GRADIO_TEMP_DIR``), ``sessions/<session>/`` (one browser session's results and figures), ``demo/`` (the
demo photographs) and ``torchinductor/`` (torch's cache folder, made when torch is imported, unless
``TORCHINDUCTOR_CACHE_DIR`` names another; set by ``basicsr serve`` before that). A session's folder and its
uploads are removed when the session ends (the page is closed), the whole folder when the server stops.
"""
import os
import os.path as osp
import re
import shutil
import tempfile
import threading

import cv2
import numpy as np

#: The scikit-image photographs offered as demos (bundled with scikit-image, nothing is downloaded).
DEMO_PHOTOGRAPHS = ('coffee', 'astronaut', 'chelsea', 'rocket')


class Workspace:
    """The temporary folder of one server.

    Args:
        parent (str | None): Where to create it. Default: None (the system's temporary folder).
        root (str | None): An empty folder made for it (by ``tempfile.mkdtemp``) to take instead. Default: None.
    """

    def __init__(self, parent=None, root=None):
        self.root = osp.realpath(root or tempfile.mkdtemp(prefix='basicsr-serve-', dir=parent))
        self.uploads = osp.join(self.root, 'gradio')
        self.sessions = osp.join(self.root, 'sessions')
        self.demo = osp.join(self.root, 'demo')
        for folder in (self.uploads, self.sessions, self.demo):
            os.makedirs(folder)
        self._lock = threading.Lock()
        self._session_uploads = {}

    def contains(self, path):
        """Whether ``path`` (after resolving links) lies inside the workspace."""
        return osp.commonpath([self.root, osp.realpath(path)]) == self.root

    def session_folder(self, session):
        """The folder of one session (created on first use); ``session`` is Gradio's session hash."""
        if not re.fullmatch(r'[A-Za-z0-9_-]{1,64}', session or ''):
            raise ValueError(f'invalid session id {session!r}')
        folder = osp.join(self.sessions, session)
        os.makedirs(folder, exist_ok=True)
        return folder

    def remember_uploads(self, session, paths):
        """Note the uploaded files of a session, to remove them with it."""
        with self._lock:
            self._session_uploads.setdefault(session, set()).update(paths)

    def end_session(self, session):
        """Remove a session's folder and its uploads."""
        with self._lock:
            uploads = self._session_uploads.pop(session, set())
        for path in uploads:
            if self.contains(path) and osp.isfile(path):
                os.remove(path)
                parent = osp.dirname(path)
                if parent != self.uploads and self.contains(parent) and not os.listdir(parent):
                    os.rmdir(parent)
        if re.fullmatch(r'[A-Za-z0-9_-]{1,64}', session or ''):
            shutil.rmtree(osp.join(self.sessions, session), ignore_errors=True)

    def remove(self):
        """Remove the whole folder (when the server stops)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def demo_photograph(self, name):
        """The path of the demo photograph ``name`` (one of `DEMO_PHOTOGRAPHS`), written on first use."""
        if name not in DEMO_PHOTOGRAPHS:
            raise ValueError(f'unknown demo photograph {name!r}; choose from {", ".join(DEMO_PHOTOGRAPHS)}')
        path = osp.join(self.demo, f'{name}.png')
        with self._lock:
            if not osp.isfile(path):
                from skimage import data
                image = np.asarray(getattr(data, name)())
                if image.ndim == 3 and image.shape[2] == 4:
                    image = image[..., :3]
                image = image if image.ndim == 2 else np.ascontiguousarray(image[..., ::-1])
                if not cv2.imwrite(path, image):
                    raise OSError(f'cannot write the demo photograph {path}')
        return path

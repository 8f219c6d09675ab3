from setuptools import find_packages, setup

setup(
    name='vlunet_basicsr',
    version='0.1.0',
    description='VLU-Net (CVPR 2025) all-in-one image restoration as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['vlunet_basicsr', 'vlunet_basicsr.*', 'vlunet_basicsr_cli']),
    python_requires='>=3.9',
    # Ranges, not pins: requirements.txt pins the tested stack. basicsr builds against the installed torch,
    # so install torch first and basicsr with --no-build-isolation (see scripts/setup_env.sh).
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'basicsr>=1.4.2',
        'open_clip_torch>=2.20',
        'einops>=0.6',
        'lmdb>=1.0',
        'opencv-python>=4.5',
        'pyyaml>=5.4',
        'scikit-image>=0.19',
        'numpy>=1.23',
        'tqdm>=4.60',
        'tensorboard>=2.10',
        'matplotlib>=3.5',
        'pytorch-msssim>=1.0',
    ],
    extras_require={
        'onnx': ['onnx>=1.17', 'onnxruntime>=1.20', 'onnxscript>=0.5'],  # basicsr export, restore --backend
        'openvino': ['onnx>=1.17', 'openvino>=2025.0,<2027'],  # restore --backend openvino
        'serve': ['gradio>=5,<7', 'gradio_client>=1'],  # basicsr serve
    },
    entry_points={
        'console_scripts': ['basicsr=vlunet_basicsr_cli:console_main'],
    },
)

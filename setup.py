"""Install with `pip install -e .`; `.[test]` adds the test tools, `.[gpu]` JAX for NVIDIA GPUs
(docs/install.md)."""
from setuptools import find_packages, setup

setup(
    name="sketch-rnn",
    version="0.1.0",
    description="Sketch-RNN (Ha & Eck 2017) in Keras 3: train, resume exactly, sample and draw",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # the code; the bundled data and the shipped models: data/README.md
    license_files=["LICENSE"],
    python_requires=">=3.10",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["sketch_rnn", "sketch_rnn.*"]),
    package_data={"sketch_rnn.serving": ["static/*"]},  # the `serve` page: HTML, JS, CSS
    install_requires=[
        "numpy>=1.26",
        "tensorflow-cpu==2.21.0; platform_machine=='x86_64'",
        "tensorflow==2.21.0; platform_machine!='x86_64'",
        "keras==3.15.1",
        "svgwrite>=1.4",
        "matplotlib>=3.8",
        "pillow>=10",
        "scipy>=1.11",
        "tqdm>=4.66",
        "tensorboard>=2.16",
        "starlette>=0.37",
        "uvicorn>=0.29",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.6", "jax==0.10.2", "jaxlib==0.10.2",
                 "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6", "httpx>=0.27",
                 "selenium>=4.20", "ipywidgets>=8", "hypothesis>=6.100"],
        # the notebooks: `sketch_rnn.train`'s progress bar as a Jupyter widget (tqdm.auto)
        "notebook": ["ipykernel>=6", "ipywidgets>=8"],
        "jax": ["jax==0.10.2", "jaxlib==0.10.2"],
        # training on NVIDIA GPUs: JAX with its CUDA 12 wheels (CUDA and cuDNN included; the
        # driver is the system's), run with KERAS_BACKEND=jax; same JAX as the tests pin
        "gpu": ["jax[cuda12]==0.10.2"],
    },
    entry_points={"console_scripts": ["sketch-rnn=sketch_rnn.cli:console"]},
)

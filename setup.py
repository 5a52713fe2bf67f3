"""zppo: Zone of Proximal Policy Optimization as a verl recipe.

Install (CPU, what CI does):   pip install torch==2.14.1 torchvision==0.29.1 && pip install -e ".[test]"
Install (GPU cluster):          see examples/README.md, "GPU install" (verl 0.9.1's tested pins; flash-attn and
                                causal-conv1d built with --no-build-isolation; not installable on CPU machines)
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERL_PIN = (HERE / "REQUIRED_VERL.txt").read_text().strip()  # verl==0.9.1
# The GPU stack, on the pins verl 0.9.1 was tested with (its own extras: `vllm` for vllm, torch, torchvision and
# transformers; `fsdp` for flash-attn and flash-linear-attention), not open ranges: pip would otherwise take today's
# vLLM, built on another torch. tests/unit/test_gpu_runs.py compares these with verl's installed metadata.
# causal-conv1d (ours: verl lists none) is the other kernel of Qwen3.5's gated-delta-net layers; without it and
# flash-linear-attention transformers falls back to a slow torch path.
GPU_EXTRA = [
    "vllm==0.24.0",
    "torch==2.11.0",
    "torchvision==0.26.0",
    "torchaudio==2.11.0",
    "transformers==5.9.0",
    "flash-attn==2.8.3",
    "flash-linear-attention==0.5.2",
    "causal-conv1d>=1.5",
]

setup(
    name="zppo",
    version="0.1.0",
    description="Zone of Proximal Policy Optimization (ZPPO): teacher in prompts, not gradients - a verl recipe",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=["recipe", "recipe.*", "verl_patches", "verl_patches.*", "data_prep", "data_prep.*"]
    ),
    package_data={"recipe.zppo": ["config/*.yaml", "config/*/*.yaml"], "data_prep.build_zppo77k": ["*.yaml"],
                  "recipe.zppo.eval": ["*.json"]},  # the paper's reference numbers (paper_reference.json)
    install_requires=[
        # verl-core pulls TransferQueue and cachetools, which the V1 trainer imports; math adds math-verify.
        # Never use verl's `cpu` extra: it pins another torch and pulls CUDA packages.
        VERL_PIN.replace("verl==", "verl[verl-core,math]=="),
        # torch/torchvision are installed first, explicitly (see Makefile): pip must not choose them.
        "torch>=2.9",
        "transformers>=5.0,<5.11",
        "hydra-core>=1.3",
        "omegaconf>=2.3",
        "ray>=2.40",
        "tokenizers",
        "pillow",
        "pandas",
        "pyarrow",
        # verl's RLHFDataset and agent loop import it for every image prompt; verl-core does not require it.
        "qwen-vl-utils",
        # python -m recipe.zppo.report draws its PNG plots with it (pure wheels, no torch).
        "matplotlib",
        # The paper's reward grader (App. D.1: mathruler.grader's extract_boxed_content and grade_answer). Pinned: the
        # reward calls its functions as they are; its package declares no dependencies, so they are listed here
        # (sympy for grade_answer, pylatexenc for its LaTeX reading, tqdm imported at module level).
        "mathruler==0.1.0",
        "sympy>=1.12",
        "pylatexenc>=2.10",
        "tqdm",
        # The judge's prompt is the paper's Jinja2 template (Fig. 9; recipe/zppo/reward/judge.py).
        "jinja2>=3.1",
        # The teacher client (recipe/zppo/teacher/client.py); transformers serve needs openai>=1.98 itself.
        "openai>=1.98",
        # `transformers serve`, the CPU teacher server (teacher/service.py): what transformers' `serving` extra
        # checks for (is_serve_available), listed here rather than the extra, which also names torch.
        "fastapi",
        "uvicorn",
        "pydantic>=2",
        # Evaluation scoring (recipe/zppo/eval/ocrbench_v2.py): OCRBench v2's official metrics come from these, as in
        # its eval_scripts: nltk's BLEU, METEOR and F-measure, Levenshtein distance, APTED's tree edit distance (TEDS).
        "nltk>=3.9",
        "rapidfuzz>=3",
        "apted>=1.0.3",
    ],
    extras_require={
        # ruff is pinned: another version may flag other things (make lint; configured in pyproject.toml).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6", "ruff==0.17.6"],
        # GPU clusters only: these do not install (or run) on a CPU machine.
        "gpu": GPU_EXTRA,
    },
    entry_points={
        # verl imports every module of this group when `verl` is imported, in the driver and in every Ray worker.
        "verl.plugins": [
            "zppo_verl_patches = verl_patches.plugin",  # what verl lacks on a CPU (platform, hf rollout)
            "zppo = recipe.zppo.trainer.registration",  # ZPPO's estimator, trainer and agent loop
        ],
    },
)

"""Entry point: ``python -m recipe.zppo.main_zppo [--config-name zppo_cpu] [hydra overrides]``.

Like verl's ``main_ppo`` (and DAPO's ``main_dapo``), but it checks the inputs before Ray starts, so a wrong path
or column is one line naming the file and key rather than a traceback from inside a Ray actor, and it prepares the
CPU platform when the config asks for ``trainer.device=cpu``.
"""

from __future__ import annotations

import os
import sys
import time

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from . import config as _config  # noqa: F401  (registers the typed zppo.* schema with Hydra)
from .trainer.preflight import ConfigError, check_config, expand_data_files, prompt_length_is_explicit


def _prepare_environment(config: DictConfig) -> None:
    """Environment that every process of the run (driver, task runner, workers) must share."""
    from .trainer.registration import RUN_MARKER

    env_vars: dict[str, str] = {RUN_MARKER: "1"}  # the plugin registers ZPPO's trainer in this run's processes
    if config.trainer.device == "cpu":
        # Selects verl_patches' cpu platform in this process and, through Ray's runtime env, in every worker.
        env_vars["VERL_PLATFORM"] = "cpu"
        # Two cores: one intra-op thread per process keeps the many small actors from thrashing.
        env_vars.setdefault("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    # verl's file logger truncates its file on open: one file per launch keeps a resumed run's earlier metrics.
    if "file" in list(config.trainer.logger):
        run_dir = os.path.abspath(os.path.expanduser(config.trainer.default_local_dir))
        os.makedirs(os.path.join(run_dir, "metrics"), exist_ok=True)
        env_vars["VERL_FILE_LOGGER_PATH"] = os.path.join(run_dir, "metrics", f"{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    os.environ.update(env_vars)

    with open_dict(config):
        ray_init = config.ray_kwargs.setdefault("ray_init", {})
        runtime_env = ray_init.setdefault("runtime_env", {})
        runtime_env.setdefault("env_vars", {})
        for key, value in env_vars.items():
            runtime_env.env_vars[key] = value
        if os.environ.get("RAY_ADDRESS") or ray_init.get("address"):
            # Attaching to a running cluster (e.g. the test session's `ray start --head`): it has its own resources.
            ray_init.pop("num_cpus", None)
            ray_init.pop("num_gpus", None)
        elif ray_init.get("num_cpus") is not None or ray_init.get("num_gpus") is not None:
            # Resources were asked for: start this run's own local cluster, even if another one is running here
            # (ray.init() would otherwise attach to it and refuse the resource arguments).
            ray_init["address"] = "local"


def _absolute_local_paths(config: DictConfig) -> None:
    """Resolve the config here and make local paths absolute.

    The trainer runs in a Ray actor whose environment and working directory are not the driver's: interpolations
    such as ``${oc.env:...}`` and relative paths must mean what they meant where the user typed the command.
    """
    OmegaConf.resolve(config)

    def absolute(path):
        expanded = os.path.expanduser(str(path))
        return os.path.abspath(expanded) if os.path.exists(expanded) else path

    with open_dict(config):
        config.actor_rollout_ref.model.path = absolute(config.actor_rollout_ref.model.path)
        if config.get("zppo") is not None and config.zppo.teacher.server.model:
            config.zppo.teacher.server.model = absolute(config.zppo.teacher.server.model)
        for key in ("train_files", "val_files"):
            # A directory or glob of shards (the ZPPO-77K builder's output) becomes the list of its files.
            config.data[key] = [absolute(f) for f in expand_data_files(config.data[key])]
        config.trainer.default_local_dir = os.path.abspath(os.path.expanduser(config.trainer.default_local_dir))


def _mark_process(config: DictConfig) -> None:
    """Before anything imports verl: the platform (resolved at import by some verl modules) and the run marker."""
    from .trainer.registration import RUN_MARKER

    os.environ[RUN_MARKER] = "1"
    if config.trainer.get("device") == "cpu":
        os.environ["VERL_PLATFORM"] = "cpu"


def _start_teacher_service(config: DictConfig):
    """Serve the teacher for this run when it needs one and no url was given (the CPU's tiny teacher, a GPU's
    vLLM); the trainer reaches it through ``zppo.teacher.server.url``. Returns the service (stopped by the caller)."""
    from .config.schema import load_zppo_config
    from .teacher.service import TeacherService

    zppo = load_zppo_config(config)
    if not zppo.needs_teacher_service or zppo.teacher.server.url or config.trainer.get("val_only", False):
        return None  # (an evaluation, trainer.val_only, builds no BCQ/NCQ prompt)
    log_path = os.path.join(config.trainer.default_local_dir, "teacher_server.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    service = TeacherService(zppo.teacher.server, log_path)
    print(f"zppo: starting the teacher server ({' '.join(service.command()[:4])} ...; log: {log_path})", flush=True)
    started = time.perf_counter()
    url, model = service.start()
    print(f"zppo: teacher server ready at {url} in {time.perf_counter() - started:.0f} s", flush=True)
    with open_dict(config):
        config.zppo.teacher.server.url = url
        config.zppo.teacher.server.model = model
    return service


def run(config: DictConfig) -> None:
    try:
        derive_prompt_length = not prompt_length_is_explicit(config)  # before resolving: verl's default interpolates
        _absolute_local_paths(config)
        _mark_process(config)
        check_config(config, derive_prompt_length=derive_prompt_length)
        from .baselines.distill import prepare_distill

        prepare_distill(config)  # the distillation baselines: teacher model set, one update per step; its Ray GPUs
    except ConfigError as error:
        print(f"zppo: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None

    _prepare_environment(config)
    with _console(config):
        _run_training(config)


def _console(config: DictConfig):
    """``zppo.console=steps``: ZPPO's lines and a progress bar on the terminal, the rest in <run dir>/run.log."""
    import contextlib

    from .console import StepConsole

    if (config.get("zppo") or {}).get("console", "all") != "steps":
        return contextlib.nullcontext()
    return StepConsole(config.trainer.default_local_dir, config.trainer.get("total_training_steps"))


def _judge_on_teacher(config: DictConfig) -> None:
    """The reward's judge on the run's teacher server (App. D.1: the teacher model judges), unless the reward
    kwargs or the environment name a judge or ``zppo.teacher.judge=false``. The reward workers read it from their
    environment (``ZPPO_JUDGE_URL`` / ``ZPPO_JUDGE_MODEL``, reward/judge.py)."""
    teacher = (config.get("zppo") or {}).get("teacher") or {}
    url, model = teacher.get("server", {}).get("url"), teacher.get("server", {}).get("model")
    kwargs = (config.reward.get("custom_reward_function") or {}).get("reward_kwargs") or {}
    nested = kwargs.get("judge")
    named = (kwargs.get("judge_url") or (nested.get("url") if hasattr(nested, "get") else None)
             or os.environ.get("ZPPO_JUDGE_URL"))
    if not (url and model and teacher.get("judge", True)) or named:
        return
    env = {"ZPPO_JUDGE_URL": str(url), "ZPPO_JUDGE_MODEL": str(model)}
    os.environ.update(env)
    with open_dict(config):
        config.ray_kwargs.ray_init.runtime_env.env_vars.update(env)
    print(f"zppo: the reward's judge is the teacher at {url}", flush=True)


def _run_training(config: DictConfig) -> None:
    try:
        teacher_service = _start_teacher_service(config)
    except RuntimeError as error:  # the server did not come up: its one-line reason, with its log's tail
        print(f"zppo: teacher server: {error}", file=sys.stderr)
        raise SystemExit(2) from None

    _judge_on_teacher(config)

    # Imported after the environment is set: verl resolves its platform (VERL_PLATFORM) on first use.
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    try:
        run_ppo(config, task_runner_class=TaskRunnerV1)
    finally:
        # Disconnect here, not at interpreter exit: Ray prints the workers' last (deduplicated) log lines when the
        # driver leaves, and under zppo.console=steps they belong in run.log, not on the terminal after the bar.
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if teacher_service is not None:
            teacher_service.stop()


@hydra.main(config_path="config", config_name="zppo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    main()

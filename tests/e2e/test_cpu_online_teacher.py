"""The online teacher end to end: a second tiny model behind a real local OpenAI-compatible server.

The rows carry no teacher responses; hard questions are sent to the server, its answers scored with the run's
reward (a test reward that accepts every teacher answer), cached per question and used for BCQ prompts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.tiny import build_text_dataset, build_text_model

from ..conftest import run_main, start_teacher_server, stop_process
from .helpers import cpu_run_args, failure_context, step_metrics

pytestmark = pytest.mark.e2e


@pytest.fixture
def teacher_server(tmp_path):
    model = build_text_model(tmp_path / "teacher-model", seed=1)  # a second tiny model, not the student
    proc, url = start_teacher_server(model, tmp_path / "teacher_server.log", "--max-tokens", "48",
                                     "--served-model-name", "teacher", timeout_s=180)
    try:
        yield url
    finally:
        stop_process(proc)


def test_online_teacher_feeds_bcq(tiny_assets, ray_cluster, tmp_path, teacher_server):
    data = build_text_dataset(tmp_path / "data-no-teacher", teacher_responses=0)
    run_dir = tmp_path / "run"
    args = cpu_run_args(
        tiny_assets["text-model"], data, run_dir,
        f"reward.custom_reward_function.path={Path(__file__).with_name('reward_for_tests.py')}",
        "reward.custom_reward_function.name=only_teacher_is_right",
        "zppo.teacher.online.enable=true",
        f"zppo.teacher.online.url={teacher_server}",
        "zppo.teacher.online.model=teacher",
        "zppo.teacher.online.max_tokens=48",
        "zppo.teacher.online.timeout_s=60",
        "trainer.total_training_steps=2",
    )
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    steps = step_metrics(run_dir)
    first, second = steps
    # Step 1: every fresh question is hard and has no stored teacher response: all are asked, once each.
    assert first["zppo/teacher_online/asked"] == first["zppo/hard_questions"] > 0
    assert first["zppo/teacher_online/requests"] == first["zppo/teacher_online/asked"]
    assert first["zppo/teacher_online/failures"] == 0
    assert first["zppo/teacher_online/solved"] == first["zppo/teacher_online/asked"]
    assert first["zppo/bcq_built"] > 0
    assert first["zppo/update/bcq_trajectories"] == first["zppo/bcq_built"] * 4
    # Step 2: the replayed question was answered at step 1: served from the cache, not asked again.
    assert second["zppo/replayed_questions"] > 0
    assert second["zppo/teacher_online/cache_hits"] >= second["zppo/replayed_questions"]


def test_failing_teacher_server_never_stops_a_step(tiny_assets, ray_cluster, tmp_path):
    """A teacher endpoint that refuses connections: the steps go on with NCQ only, and the failures are counted."""
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    data = build_text_dataset(tmp_path / "data-no-teacher", teacher_responses=0)
    run_dir = tmp_path / "run"
    args = cpu_run_args(
        tiny_assets["text-model"], data, run_dir,
        "zppo.teacher.online.enable=true",
        f"zppo.teacher.online.url=http://127.0.0.1:{closed_port}",
        "zppo.teacher.online.model=teacher",
        "zppo.teacher.online.timeout_s=2",
        "zppo.teacher.online.max_retries=1",
        "trainer.total_training_steps=1",
    )
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    (step,) = step_metrics(run_dir)
    assert step["zppo/teacher_online/asked"] == step["zppo/hard_questions"] > 0
    assert step["zppo/teacher_online/failures"] == step["zppo/teacher_online/asked"]
    assert step["zppo/teacher_online/solved"] == 0
    assert step["zppo/bcq_built"] == 0 and step["zppo/ncq_built"] > 0
    assert step["zppo/no_teacher_candidate"] > 0

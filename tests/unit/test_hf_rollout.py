"""The ``hf`` rollout server, driven directly (no Ray): sampled-token log-probs, batching, weight sync, prompt
log-probs."""

from __future__ import annotations

import asyncio

import pytest
import torch

from verl_patches.hf_rollout import HFRolloutServer


@pytest.fixture(scope="module")
def server(tiny_assets):
    from verl.workers.config import HFModelConfig, RolloutConfig

    model_path = str(tiny_assets["text-model"])
    rollout_config = RolloutConfig(name="hf", dtype="float32", prompt_length=64, response_length=12,
                                   tensor_model_parallel_size=1)
    model_config = HFModelConfig(path=model_path, override_config={"attn_implementation": "sdpa"})
    return HFRolloutServer(config=rollout_config, model_config=model_config)


def _prompts(server, n: int) -> list[list[int]]:
    tokenizer = server.tokenizer
    questions = [f"What is {i} + {2 * i + 1}?" for i in range(n)]
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                      return_dict=False)
        for q in questions
    ]


def _generate_all(server, prompts, params):
    async def go():
        return await asyncio.gather(
            *[server.generate(prompt_ids=p, sampling_params=dict(params), request_id=str(i))
              for i, p in enumerate(prompts)]
        )

    return asyncio.run(go())


def _reference_logprobs(model, prompt, tokens, temperature):
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    if temperature > 0:
        logits = logits / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens).unsqueeze(-1)).squeeze(-1)


def test_sampled_token_logprobs_match_a_forward_pass_in_a_batch(server):
    # Prompts of different lengths are left-padded into one batch: each row must still be scored as if alone.
    prompts = _prompts(server, 5)
    prompts[1] = prompts[1] + prompts[1][-4:]  # a longer one
    outputs = _generate_all(server, prompts, {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "logprobs": True})
    for prompt, output in zip(prompts, outputs):
        assert 1 <= len(output.token_ids) <= 12
        assert len(output.log_probs) == len(output.token_ids)
        expected = _reference_logprobs(server.model, prompt, output.token_ids, temperature=0.7)
        assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)
        assert output.extra_fields["weight_version"] == server.weight_version


def test_greedy_is_deterministic_and_stops_at_eos(server):
    prompts = _prompts(server, 3)
    first = _generate_all(server, prompts, {"temperature": 0, "logprobs": False})
    second = _generate_all(server, prompts, {"temperature": 0, "logprobs": False})
    assert [o.token_ids for o in first] == [o.token_ids for o in second]
    assert all(o.log_probs is None for o in first)
    for output in first:
        eos_positions = [i for i, t in enumerate(output.token_ids) if t in server.eos_token_ids]
        assert eos_positions in ([], [len(output.token_ids) - 1]), "nothing may follow an end-of-sequence token"


def test_update_weights_changes_generation_and_rejects_unknown_names(server):
    prompts = _prompts(server, 2)
    before = _generate_all(server, prompts, {"temperature": 0})
    version = server.weight_version
    state = server.model.state_dict()
    original = {k: v.clone() for k, v in state.items()}
    # Tied parameters (embeddings / lm_head) share storage: perturb each storage once, as an actor would send it.
    by_storage, perturbed = {}, {}
    for name, tensor in state.items():
        key = tensor.data_ptr()
        if key not in by_storage:
            by_storage[key] = tensor + 0.5 * torch.randn_like(tensor) if tensor.is_floating_point() else tensor.clone()
        perturbed[name] = by_storage[key]
    try:
        server.update_weights(perturbed, global_steps=7)
        assert server.weight_version == version + 1 and server.global_steps == 7
        for name, tensor in server.model.state_dict().items():
            assert torch.equal(tensor, perturbed[name])
        after = _generate_all(server, prompts, {"temperature": 0})
        assert [o.token_ids for o in after] != [o.token_ids for o in before]
        assert all(o.extra_fields["global_steps"] == 7 for o in after)
        with pytest.raises(KeyError, match="match no rollout parameter"):
            server.update_weights({"not.a.parameter": torch.zeros(1)})
        partial_state = dict(list(original.items())[1:])
        with pytest.raises(KeyError, match="sent no value"):
            server.update_weights(partial_state)
    finally:
        server.update_weights(original)


@pytest.mark.parametrize("top_k", [0, 3])
def test_prompt_logprobs_follow_vllms_layout(server, top_k):
    prompt = _prompts(server, 1)[0]
    (output,) = _generate_all(server, [prompt], {"temperature": 1.0, "max_tokens": 1, "prompt_logprobs": top_k})
    ids, logprobs = output.extra_fields["prompt_ids"], output.extra_fields["prompt_logprobs"]
    width = max(top_k, 1)
    assert len(ids) == len(logprobs) == len(prompt)
    assert all(len(row) == width for row in ids + logprobs)
    with torch.no_grad():
        reference = torch.log_softmax(server.model(input_ids=torch.tensor([prompt])).logits[0, :-1].float(), -1)
    if top_k == 0:
        assert [row[0] for row in ids[:-1]] == prompt[1:]
        expected = reference.gather(-1, torch.tensor(prompt[1:]).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(torch.tensor([row[0] for row in logprobs[:-1]]), expected, atol=1e-5)
    else:
        top = torch.topk(reference, k=top_k, dim=-1)
        assert ids[:-1] == top.indices.tolist()
        assert torch.allclose(torch.tensor(logprobs[:-1]), top.values, atol=1e-5)
    assert ids[-1] == [0] * width and logprobs[-1] == [0.0] * width  # vLLM's dummy entry for the last position


def test_max_tokens_is_respected_per_request(server):
    prompts = _prompts(server, 2)

    async def go():
        return await asyncio.gather(
            server.generate(prompt_ids=prompts[0],
                            sampling_params={"temperature": 1.0, "max_tokens": 2, "ignore_eos": True}, request_id="a"),
            server.generate(prompt_ids=prompts[1],
                            sampling_params={"temperature": 1.0, "max_tokens": 6, "ignore_eos": True}, request_id="b"),
        )

    short, long = asyncio.run(go())
    assert len(short.token_ids) == 2 and len(long.token_ids) == 6


def test_image_prompts_are_scored_with_multimodal_positions(tiny_assets):
    """Rollout log-probs of an image prompt match a forward pass with the processor's own inputs (M-RoPE included)."""
    import io

    import pandas as pd
    from PIL import Image
    from qwen_vl_utils import process_vision_info
    from verl.workers.config import HFModelConfig, RolloutConfig

    vl_server = HFRolloutServer(
        config=RolloutConfig(name="hf", dtype="float32", prompt_length=256, response_length=12,
                             tensor_model_parallel_size=1),
        model_config=HFModelConfig(path=str(tiny_assets["vl-model"]), override_config={"attn_implementation": "sdpa"}),
    )
    processor = vl_server.processor
    rows = pd.read_parquet(tiny_assets["vl-data"] / "train.parquet").head(3)
    prompts, images, inputs = [], [], []
    for _, row in rows.iterrows():
        pictures = [Image.open(io.BytesIO(x["bytes"])).convert("RGB") for x in row["images"]]
        text = row["prompt"][0]["content"].replace("<image>", "")
        content = [{"type": "image", "image": p} for p in pictures] + [{"type": "text", "text": text}]
        messages = [{"role": "user", "content": content}]
        resized, _ = process_vision_info(messages, image_patch_size=16)  # what verl's agent loop does
        chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        processed = processor(text=[chat], images=resized, return_tensors="pt")
        prompts.append(processed["input_ids"][0].tolist())
        images.append(resized)
        inputs.append(processed)

    async def go():
        return await asyncio.gather(*[
            vl_server.generate(prompt_ids=p, sampling_params={"temperature": 1.0, "logprobs": True}, request_id=str(i),
                               image_data=images[i])
            for i, p in enumerate(prompts)
        ])

    for prompt, output, processed in zip(prompts, asyncio.run(go()), inputs):
        ids = torch.tensor([prompt + output.token_ids])
        with torch.no_grad():
            logits = vl_server.model(
                input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=processed["pixel_values"],
                image_grid_thw=processed["image_grid_thw"],
                mm_token_type_ids=torch.tensor(processor.create_mm_token_type_ids(ids.tolist())),
            ).logits[0, len(prompt) - 1 : -1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(output.token_ids).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)

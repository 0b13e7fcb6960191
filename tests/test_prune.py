"""slmlab.prune: masks, Wanda, SparseGPT, the entry point, allocation, CSR storage and structured
pruning — on hand-computed values, on degenerate cases, against torch.nn.utils.prune, and on
TinyLM and a transformers Llama alike."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune
from helpers import correlated_inputs, tiny_llama

from slmlab import TinyLM, TinyLMConfig
from slmlab.calibration import hessian_from_inputs, output_error
from slmlab.lm import logits
from slmlab.prune import (
    SparseLinear,
    block_influence,
    crossover,
    csr_nbytes,
    drop_blocks,
    is_nm,
    mask_from_scores,
    nm_mask,
    owl_sparsities,
    parse_pattern,
    prune,
    prune_ffn_neurons,
    sparsegpt_prune_weight,
    sparsity_report,
    to_sparse,
    unstructured_mask,
    wanda_scores,
    zero_fraction,
)
from slmlab.prune.allocation import sensitivity_sparsities
from slmlab.surgery import find_linears


def _tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=96, d_model=64, n_layer=3, n_head=4, n_kv_head=2, block_size=64)
    cfg.update(d_ff=128, **kw)
    return TinyLM(TinyLMConfig(**cfg)).eval()


def _calib(n=16, t=32, vocab=96, seed=0):
    return torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


def _correlated_inputs(n=4096, d=128, seed=0):
    return correlated_inputs(n, d, seed, outliers=10.0)


def _llama(layers=2, seed=0):
    return tiny_llama(layers=layers, seed=seed)


# ----------------------------------------------------------------------------- masks
def test_the_chapters_wanda_example_keeps_what_drives_the_output():
    w = torch.tensor([[0.9, -0.2, 0.4, -0.1]])
    norms = torch.tensor([0.1, 5.0, 1.0, 8.0])
    magnitude = unstructured_mask(w.abs(), 0.5)
    wanda = unstructured_mask(wanda_scores(w, norms.square()), 0.5)
    assert magnitude.tolist() == [[True, False, True, False]]
    assert wanda.tolist() == [[False, True, False, True]]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.77, 0.95])
def test_unstructured_masks_remove_exactly_the_asked_share(sparsity):
    scores = torch.rand(24, 40, generator=torch.Generator().manual_seed(1))
    per_row = unstructured_mask(scores, sparsity, "row")
    assert (per_row.sum(1) == 40 - round(sparsity * 40)).all()
    per_layer = unstructured_mask(scores, sparsity, "layer")
    assert int(per_layer.sum()) == scores.numel() - round(sparsity * scores.numel())
    if 0 < sparsity:  # the kept scores are the highest ones
        assert scores[per_layer].min() > scores[~per_layer].max()


@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4"])
def test_nm_masks_keep_n_in_every_group(pattern):
    n, m = parse_pattern(pattern)
    scores = torch.rand(8, 32, generator=torch.Generator().manual_seed(2))
    keep = nm_mask(scores, n, m)
    assert (keep.reshape(8, -1, m).sum(-1) == n).all()
    assert is_nm(scores * keep, n, m) and not is_nm(scores, n, m)
    groups = scores.reshape(8, -1, m)
    kept = torch.where(keep.reshape(8, -1, m), groups, torch.inf).amin(-1)
    dropped = torch.where(keep.reshape(8, -1, m), -torch.inf, groups).amax(-1)
    assert (kept > dropped).all()


def test_magnitude_masks_equal_torch_nn_utils_prune():
    """The library twin: l1_unstructured removes the round(amount * n) smallest |W| of a tensor,
    the mask of scope="layer"; prune() of a model gives the same layers."""
    model = _tiny_model()
    for amount in (0.3, 0.5, 0.9):
        pruned = prune(model, "magnitude", amount)
        for name, layer in find_linears(model).items():
            twin = nn.Linear(layer.in_features, layer.out_features, bias=False)
            twin.weight.data.copy_(layer.weight.data)
            torch_prune.l1_unstructured(twin, "weight", amount=amount)
            ours = mask_from_scores(layer.weight.abs(), amount, scope="layer")
            assert torch.equal(ours, twin.weight_mask.bool()), (name, amount)
            assert torch.equal(pruned.get_submodule(name).weight, twin.weight), (name, amount)


def test_bad_patterns_and_sparsities_get_clear_errors():
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for kwargs, match in [
        ({"pattern": "2-4"}, "unknown sparsity pattern"),
        ({"pattern": "4:4"}, "0 < N < M"),
        ({"sparsity": 1.0}, r"in \[0, 1\)"),
        ({"sparsity": 0.3, "pattern": "2:4"}, "fixes the sparsity"),
        ({"pattern": "3:7"}, "multiple of 7"),
        ({"scope": "global"}, "unknown scope"),
        ({"method": "obs"}, "unknown pruning method"),
        ({"method": "wanda"}, "calib"),
        ({"method": "sparsegpt", "scope": "row", "calib": _calib()}, "chooses its own mask"),
        ({"sparsity": {"blocks.0.attn.q_proj": 0.5}}, "no entry for"),
        ({"include": ["nothing*"]}, "no linear layer"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            prune(model, **{"method": "magnitude", **kwargs})
    with pytest.raises(TypeError, match="unknown option"):
        prune(model, "magnitude", 0.5, blocksize=64)
    from slmlab.quant import quantize

    with pytest.raises(TypeError, match="prune the float model first"):
        prune(quantize(model, "rtn"), "magnitude", 0.5)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ----------------------------------------------------------------------------- SparseGPT
def test_sparsegpt_at_zero_sparsity_changes_nothing():
    W = torch.randn(32, 128)
    H = hessian_from_inputs(_correlated_inputs())
    new, keep = sparsegpt_prune_weight(W, H, 0.0)
    assert keep.all() and torch.allclose(new, W, atol=1e-6)


@pytest.mark.parametrize("sparsity,pattern", [(0.5, None), (0.7, None), (None, (2, 4))])
def test_sparsegpt_reconstructs_better_than_wanda_and_magnitude(sparsity, pattern):
    """On the same calibration inputs, the layer-output error (what SparseGPT minimises) is lowest
    for SparseGPT."""
    torch.manual_seed(0)
    W = torch.randn(64, 128) * 0.05
    X = _correlated_inputs()
    H = hessian_from_inputs(X)
    s = 0.5 if sparsity is None else sparsity
    pat = "unstructured" if pattern is None else "2:4"
    sgpt, keep = sparsegpt_prune_weight(W, H, s, pattern)
    assert zero_fraction(sgpt) == pytest.approx(s, abs=1 / 64)
    if pattern is not None:
        assert is_nm(sgpt, *pattern)
    wanda = W * mask_from_scores(wanda_scores(W, X.square().mean(0)), s, pat)
    magnitude = W * mask_from_scores(W.abs(), s, pat)
    errors = [output_error(W, w, H) for w in (sgpt, wanda, magnitude)]
    assert errors[0] < min(errors[1:]), errors


def test_on_the_reference_models_layers_sparsegpt_then_wanda_then_magnitude():
    """Real activations (the base model's, on TinyTales): per layer SparseGPT reconstructs best,
    and over the model's layers Wanda's score beats magnitude's."""
    from slmlab.calibration import calibration_windows, collect_input_stats
    from slmlab.reference import load_reference

    model, tok = load_reference("base")
    calib = calibration_windows(tok, n_samples=16, seq_len=128)
    layers = {
        n: m for n, m in find_linears(model).items() if n.startswith(("blocks.0", "blocks.4"))
    }
    stats = collect_input_stats(layers, lambda: logits(model, calib), sqmean=True)
    totals = torch.zeros(3)
    for name, layer in layers.items():
        W, H = layer.weight.detach(), stats[name].H
        sgpt, _ = sparsegpt_prune_weight(W, H, 0.6)
        wanda = W * mask_from_scores(wanda_scores(W, stats[name].sqmean), 0.6)
        magnitude = W * mask_from_scores(W.abs(), 0.6)
        errors = torch.tensor([output_error(W, w, H) for w in (sgpt, wanda, magnitude)])
        assert errors[0] < errors[1:].min(), (name, errors)
        totals += errors
    assert totals[0] < totals[1] < totals[2], totals


def test_sparsegpt_mask_is_exact_per_block_and_weights_outside_it_are_zero():
    W = torch.randn(16, 256)
    H = hessian_from_inputs(_correlated_inputs(d=256))
    new, keep = sparsegpt_prune_weight(W, H, 0.6, blocksize=64)
    for b in range(4):
        block = keep[:, 64 * b : 64 * (b + 1)]
        assert int((~block).sum()) == round(0.6 * block.numel())
    assert (new[~keep] == 0).all() and (new[keep] != 0).all()


def _llmcompressor_module(path):
    """One file of llm-compressor, loaded alone: its per-layer SparseGPT and Wanda functions
    need only torch, transformers and loguru (the package's __init__ pulls in everything
    else; it pins an older transformers, so it is installed without its dependencies)."""
    import importlib.util

    spec = importlib.util.find_spec("llmcompressor")
    pytest.importorskip("loguru")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-compressor is not installed (make installs it without dependencies)")
    file = Path(spec.submodule_search_locations[0]) / path
    module_spec = importlib.util.spec_from_file_location(f"_llmc_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("nm", [None, (2, 4), (4, 8)])
def test_sparsegpt_equals_llm_compressors(nm):
    """The library twin: llm-compressor's ``sparsify_weight`` (the SparseGPT reference code's
    algorithm) on the same weight and Hessian. Its unstructured threshold is inclusive — it
    removes ``int(k * s) + 1`` weights of a block of k — so ours is asked for exactly that many;
    its ``prune_n`` counts the weights *removed* from each group of M (ours: kept)."""
    sgpt = _llmcompressor_module("modifiers/pruning/sparsegpt/sgpt_sparsify.py")
    torch.manual_seed(0)
    layer = nn.Linear(256, 48, bias=False)
    X = _correlated_inputs(d=256)
    H = hessian_from_inputs(X)
    block = 128
    if nm is None:
        theirs_s = 0.5
        ours_s = (int(48 * block * theirs_s) + 1) / (48 * block)
        n_removed, m = 0, 0
    else:
        theirs_s = ours_s = 0.0
        n_removed, m = nm[1] - nm[0], nm[1]
    _, theirs = sgpt.sparsify_weight(
        layer, {layer: H.clone()}, theirs_s, n_removed, m, block, 0.01, False
    )
    ours, _ = sparsegpt_prune_weight(
        layer.weight, H, ours_s if nm is None else 0.5, nm, blocksize=block
    )
    assert torch.equal(ours == 0, theirs == 0)
    torch.testing.assert_close(ours, theirs.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_wanda_equals_llm_compressors(nm):
    wanda = _llmcompressor_module("modifiers/pruning/wanda/wanda_sparsify.py")
    torch.manual_seed(0)
    layer = nn.Linear(128, 40, bias=False)
    X = _correlated_inputs()
    row_scalars, n = torch.zeros(128), 0
    for chunk in X.split(512):
        row_scalars, n = wanda.accumulate_row_scalars(chunk.unsqueeze(0), layer, row_scalars, n)
    n_removed, m = (0, 0) if nm is None else (nm[1] - nm[0], nm[1])
    theirs = wanda.sparsify_weight(layer, {layer: row_scalars}, 0.5, n_removed, m)
    pattern = "unstructured" if nm is None else "2:4"
    ours = layer.weight * mask_from_scores(
        wanda_scores(layer.weight, X.square().mean(0)), 0.5, pattern
    )
    assert torch.equal(ours, theirs)


# ----------------------------------------------------------------------------- prune()
@pytest.mark.parametrize("method", ["magnitude", "random", "wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_prune_meets_the_sparsity_and_leaves_the_model_alone(method, pattern):
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sparsity = 0.6 if pattern == "unstructured" else None
    pruned = prune(model, method, sparsity, pattern=pattern, calib=_calib())
    report = sparsity_report(pruned)
    expected = 0.6 if pattern == "unstructured" else 0.5
    assert report["layers"] == pytest.approx(expected, abs=0.01)
    assert report["model"] < report["layers"]  # embeddings and the head stay dense
    assert set(pruned.prune_info["layers"]) == set(find_linears(model))
    assert (pruned.lm_head.weight != 0).all()
    if pattern == "2:4":
        assert all(is_nm(m.weight, 2, 4) for m in find_linears(pruned).values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_prune_at_zero_sparsity_is_the_dense_model():
    model, calib = _tiny_model(), _calib()
    ids = _calib(2, 16, seed=5)
    for method in ("magnitude", "wanda", "sparsegpt"):
        pruned = prune(model, method, 0.0, calib=calib)
        torch.testing.assert_close(logits(pruned, ids), logits(model, ids), atol=1e-5, rtol=0)


def test_wanda_in_prune_uses_the_inputs_of_the_pruned_blocks_before():
    """Block by block: block 1's statistics come from block 0 already pruned, so the result
    differs from scoring every layer on the dense model's inputs (both papers' code runs so)."""
    model, calib = _tiny_model(), _calib()
    seq = prune(model, "wanda", 0.5, calib=calib)
    from slmlab.calibration import collect_input_stats

    layers = find_linears(model)
    stats = collect_input_stats(layers, lambda: logits(model, calib), hessian=False, sqmean=True)
    first = "blocks.0.attn.q_proj"
    dense_mask = mask_from_scores(wanda_scores(layers[first].weight, stats[first].sqmean), 0.5)
    assert torch.equal(seq.get_submodule(first).weight != 0, dense_mask)  # block 0: same inputs
    later = "blocks.2.ffn.down_proj"
    later_mask = mask_from_scores(wanda_scores(layers[later].weight, stats[later].sqmean), 0.5)
    assert not torch.equal(seq.get_submodule(later).weight != 0, later_mask)


def test_prune_works_on_a_transformers_llama_and_matches_tinylm_through_to_hf():
    from slmlab.hf import to_hf

    model, calib = _tiny_model(), _calib()
    hf = to_hf(model).eval()
    ids = _calib(2, 16, seed=7)
    for method in ("magnitude", "sparsegpt"):
        ours = prune(model, method, 0.5, calib=calib)
        theirs = prune(hf, method, 0.5, calib=calib)
        assert sparsity_report(theirs)["layers"] == pytest.approx(0.5, abs=1e-3)
        torch.testing.assert_close(logits(theirs, ids), logits(ours, ids), atol=2e-4, rtol=1e-4)


def test_prune_on_a_hub_sized_layer_shape(tmp_path):
    """SmolLM2-135M's widths (576 in, 1536 FFN), one layer: SparseGPT's 1536 x 1536 Hessian."""
    from transformers import AutoConfig, LlamaForCausalLM

    d = json.loads(
        (Path(__file__).parent / "fixtures/hf_configs/smollm2-135m/config.json").read_text()
    )
    d.update(num_hidden_layers=1, vocab_size=512)
    (tmp_path / "config.json").write_text(json.dumps(d))
    torch.manual_seed(0)
    model = LlamaForCausalLM(AutoConfig.from_pretrained(tmp_path)).eval()
    calib = torch.randint(0, 512, (4, 512))
    pruned = prune(model, "sparsegpt", pattern="2:4", calib=calib)
    assert all(is_nm(m.weight, 2, 4) for m in find_linears(pruned).values())
    assert sparsity_report(pruned)["layers"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- allocation
def test_owl_allocation_keeps_the_mean_and_spares_the_outlier_block():
    model, calib = _tiny_model(), _calib()
    with torch.no_grad():  # give block 1's inputs outliers: a few huge norm weights
        model.blocks[1].attn_norm.weight[:3] = 40.0
        model.blocks[1].ffn_norm.weight[:3] = 40.0
    sp = owl_sparsities(model, calib, 0.6, lam=0.1)
    by_block = [sp[f"blocks.{i}.attn.q_proj"] for i in range(3)]
    assert sum(by_block) / 3 == pytest.approx(0.6)
    assert min(by_block) == by_block[1] and max(by_block) - min(by_block) == pytest.approx(0.2)
    assert owl_sparsities(model, calib, 0.6, lam=0.0) == dict.fromkeys(sp, pytest.approx(0.6))
    pruned = prune(model, "wanda", sp, calib=calib)
    assert sparsity_report(pruned)["layers"] == pytest.approx(0.6, abs=0.01)


def test_sensitivity_allocation_removes_the_asked_share_of_weights():
    model = _tiny_model()
    names = list(find_linears(model))
    sens = {n: float(i) for i, n in enumerate(names)}
    sp = sensitivity_sparsities(model, sens, 0.7, lam=0.1)
    assert sp[names[0]] == pytest.approx(max(sp.values()))  # least sensitive: pruned most
    assert sp[names[-1]] == pytest.approx(min(sp.values()))
    pruned = prune(model, "magnitude", sp)
    assert sparsity_report(pruned)["layers"] == pytest.approx(0.7, abs=0.002)


# ----------------------------------------------------------------------------- CSR storage
def test_sparse_linear_is_the_same_function_in_fewer_bytes():
    model = prune(_tiny_model(), "magnitude", 0.8)
    sparse = to_sparse(model, min_sparsity=0.5)
    layers = find_linears(sparse)
    assert all(isinstance(m, SparseLinear) for m in layers.values())
    assert not isinstance(sparse.lm_head, SparseLinear)
    ids = _calib(2, 16, seed=3)
    torch.testing.assert_close(logits(sparse, ids), logits(model, ids), atol=1e-5, rtol=1e-5)
    q = layers["blocks.0.attn.q_proj"]
    assert torch.equal(q.dequantize(), model.blocks[0].attn.q_proj.weight)
    nnz = int((model.blocks[0].attn.q_proj.weight != 0).sum())
    stored = sum(t.numel() * t.element_size() for t in q.buffers())
    assert stored == csr_nbytes(64, 64, nnz) == nnz * 8 + 65 * 4


def test_crossover_reads_the_timing_table():
    rows = [
        {"sparsity": s, "tokens": 1, "speedup": v}
        for s, v in [(0.5, 0.3), (0.8, 1.1), (0.9, 0.9), (0.95, 1.5), (0.99, 3.0)]
    ]
    assert crossover(rows, 1) == 0.95  # stays faster from 0.95 on
    assert crossover(rows, 128) is None


# ----------------------------------------------------------------------------- structured
def test_removing_neurons_equals_zeroing_them():
    model, calib = _tiny_model(), _calib()
    pruned = prune_ffn_neurons(model, 0.25, "activation", calib)
    assert pruned.config.d_ff == 96 and pruned.blocks[0].ffn.down_proj.in_features == 96
    masked = _tiny_model()
    with torch.no_grad():
        for block, small in zip(masked.blocks, pruned.blocks):
            kept = [
                j
                for j in range(128)
                if any(
                    torch.equal(block.ffn.up_proj.weight[j], row)
                    for row in small.ffn.up_proj.weight
                )
            ]
            gone = sorted(set(range(128)) - set(kept))
            assert len(gone) == 32
            block.ffn.down_proj.weight[:, gone] = 0
    ids = _calib(2, 16, seed=4)
    torch.testing.assert_close(logits(pruned, ids), logits(masked, ids), atol=1e-5, rtol=0)
    assert pruned.num_params() < model.num_params()


def test_structured_pruning_saves_and_reloads(tmp_path):
    model = _tiny_model()
    small = drop_blocks(prune_ffn_neurons(model, 0.5, "magnitude"), [1])
    small.save_pretrained(tmp_path)
    again = TinyLM.from_pretrained(tmp_path).eval()
    assert again.config.n_layer == 2 and again.config.d_ff == 64
    ids = _calib(2, 16, seed=6)
    torch.testing.assert_close(logits(again, ids), logits(small, ids))


def test_dropping_a_block_equals_skipping_it_and_works_on_llama(tmp_path):
    from transformers import LlamaForCausalLM

    model = _tiny_model()
    ids = _calib(2, 16, seed=8)
    handle = model.blocks[1].register_forward_hook(lambda mod, args, out: args[0])
    skipped = logits(model, ids)
    handle.remove()
    torch.testing.assert_close(logits(drop_blocks(model, [1]), ids), skipped)

    hf = _llama(layers=3)
    dropped = drop_blocks(hf, [0])
    assert dropped.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in dropped.model.layers] == [0, 1]
    out = dropped.generate(ids[:1, :5], max_new_tokens=4, do_sample=False)  # the KV cache works
    assert out.shape == (1, 9)
    small = prune_ffn_neurons(dropped, 0.5, "random")
    small.save_pretrained(tmp_path)
    again = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert again.config.intermediate_size == 64
    torch.testing.assert_close(logits(again, ids), logits(small, ids))


def test_block_influence_is_zero_for_a_block_that_changes_nothing():
    model, calib = _tiny_model(), _calib()
    with torch.no_grad():
        for lin in (model.blocks[2].attn.o_proj, model.blocks[2].ffn.down_proj):
            lin.weight.zero_()
    influence = block_influence(model, calib)
    assert len(influence) == 3 and influence[2] == pytest.approx(0.0, abs=1e-6)
    assert min(influence[:2]) > 0.01
    with pytest.raises(ValueError, match="keep at least one"):
        drop_blocks(model, [0, 1, 2])
    with pytest.raises(ValueError, match="0..2"):
        drop_blocks(model, [3])
    with pytest.raises(ValueError, match="every one"):
        prune_ffn_neurons(model, 0.999, "magnitude")


# ----------------------------------------------------------------------------- recovery
def test_recovery_trains_the_copy_and_keeps_the_zeros():
    from slmlab.prune import recover

    model = _tiny_model()
    pruned = prune(model, "magnitude", 0.7)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    windows = _calib(32, 33, seed=9)
    recovered, losses = recover(pruned, windows, steps=8, batch_size=4, lr=3e-3, warmup=2)
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    for name, layer in find_linears(recovered).items():
        old = pruned.get_submodule(name).weight
        assert torch.equal(layer.weight == 0, old == 0), name  # the same zeros
    assert not torch.equal(
        recovered.blocks[0].attn.q_proj.weight, pruned.blocks[0].attn.q_proj.weight
    )
    with pytest.raises(ValueError, match="warm-up of 9 steps"):
        recover(pruned, windows, steps=4, warmup=9)


def test_recovery_by_distillation_moves_towards_the_teacher():
    from slmlab.lm import window_kl
    from slmlab.prune import recover

    teacher = _tiny_model()
    with torch.no_grad():  # peaked predictions, as a trained model's are
        teacher.lm_head.weight.mul_(30)
    student = prune_ffn_neurons(teacher, 0.5, "random")
    windows = _calib(32, 33, seed=10)
    recovered, losses = recover(student, windows, steps=10, batch_size=8, lr=1e-4, teacher=teacher)
    assert len(losses) == 10
    assert window_kl(recovered, teacher, windows) < window_kl(student, teacher, windows)
    assert all(p.requires_grad for p in teacher.parameters())  # the teacher is left as it was


def test_compare_pruning_and_the_sensitivity_scan_measure_what_they_say():
    from slmlab.lm import window_kl, window_perplexity
    from slmlab.prune import compare_pruning, layer_sensitivity, time_sparse_vs_dense

    model, calib = _tiny_model(), _calib()
    evals = _calib(4, 32, seed=11)
    rows = compare_pruning(
        model,
        evals,
        [{"method": "magnitude", "sparsity": 0.5}, {"method": "wanda", "pattern": "2:4"}],
        calib,
    )
    assert [r["method"] for r in rows] == ["dense", "magnitude", "wanda"]
    assert rows[0]["ppl"] == pytest.approx(window_perplexity(model, evals))
    assert rows[1]["ppl"] == pytest.approx(window_perplexity(prune(model, "magnitude", 0.5), evals))
    assert rows[2]["pattern"] == "2:4" and rows[2]["sparsity"] == pytest.approx(0.5)
    sens = layer_sensitivity(model, evals, 0.5)
    assert list(sens) == list(find_linears(model))
    name = "blocks.1.ffn.down_proj"
    alone = prune(model, "magnitude", 0.5, include=[name], skip=())
    assert sens[name] == pytest.approx(window_kl(alone, model, evals), rel=1e-4)
    timing = time_sparse_vs_dense(16, 32, sparsities=(0.0, 0.9), tokens=(1,), reps=1)
    assert [(r["sparsity"], r["tokens"]) for r in timing] == [(0.0, 1), (0.9, 1)]
    assert (
        timing[0]["dense_bytes"] == 16 * 32 * 4 and timing[1]["csr_bytes"] < timing[0]["csr_bytes"]
    )

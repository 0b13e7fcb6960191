"""slmlab.train.losses: the named training objectives fit() optimises."""

import pytest
import torch
import torch.nn.functional as F

from slmlab import TinyLM, TinyLMConfig
from slmlab.train import LOSSES, causal_lm_loss, get_loss


def _model():
    torch.manual_seed(0)
    return TinyLM(TinyLMConfig(vocab_size=50, n_layer=1, n_head=2, d_model=16, block_size=32))


def test_causal_lm_loss_is_next_token_cross_entropy_for_pairs_and_windows():
    m = _model()
    w = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(1))
    hand = F.cross_entropy(m(w[:, :-1]).flatten(0, 1), w[:, 1:].flatten())
    loss, metrics = causal_lm_loss(m, w)
    assert metrics == {} and torch.equal(loss, hand)
    assert torch.equal(causal_lm_loss(m, (w[:, :-1], w[:, 1:]))[0], hand)
    y = w[:, 1:].clone()
    y[:, :4] = -100  # unscored targets (SFT's prompt tokens)
    masked = F.cross_entropy(m(w[:, :-1])[:, 4:].flatten(0, 1), w[:, 5:].flatten())
    torch.testing.assert_close(causal_lm_loss(m, (w[:, :-1], y))[0], masked)


def test_causal_lm_loss_on_a_transformers_model():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=50,
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    m = transformers.GPT2LMHeadModel(cfg).eval()  # no dropout: both calls see the same function
    w = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    out = m(
        input_ids=w, labels=w
    )  # transformers shifts the labels itself: the same 8 predictions per row
    torch.testing.assert_close(causal_lm_loss(m, w)[0], out.loss)


def test_the_registry_names_losses_and_says_which_exist():
    assert get_loss("causal_lm") is causal_lm_loss is LOSSES["causal_lm"]
    own = lambda model, batch: (torch.zeros(()), {})  # noqa: E731
    assert get_loss(own) is own
    with pytest.raises(
        ValueError, match=r"unknown loss 'sft'; the known losses are \['causal_lm'\]"
    ):
        get_loss("sft")


def test_distillation_loss_is_a_hand_computed_kl_and_zero_for_the_teacher():
    import torch.nn.functional as F

    from slmlab import TinyLM, TinyLMConfig
    from slmlab.train import distillation_loss

    torch.manual_seed(0)
    cfg = TinyLMConfig(vocab_size=32, d_model=32, n_layer=1, n_head=2, block_size=16)
    teacher, student = TinyLM(cfg).eval(), TinyLM(cfg).eval()
    batch = torch.randint(0, 32, (3, 9))
    for direction in ("forward", "reverse"):
        loss_fn = distillation_loss(teacher, temperature=2.0, direction=direction)
        got, metrics = loss_fn(student, batch)
        t = F.log_softmax(teacher(batch[:, :-1]) / 2.0, -1)
        s = F.log_softmax(student(batch[:, :-1]) / 2.0, -1)
        p, q = (t, s) if direction == "forward" else (s, t)
        expected = 4.0 * F.kl_div(q, p, log_target=True, reduction="none").sum(-1).mean()
        torch.testing.assert_close(got, expected)
        assert float(metrics["kl"]) == pytest.approx(got.item())
        zero, _ = distillation_loss(teacher, 2.0, direction)(teacher, batch)
        assert abs(zero.item()) < 1e-6
    with pytest.raises(ValueError, match="direction"):
        distillation_loss(teacher, direction="sideways")


def test_a_student_with_another_vocabulary_is_refused():
    from slmlab import TinyLM, TinyLMConfig
    from slmlab.prune import recover
    from slmlab.train import distillation_loss

    torch.manual_seed(0)
    cfg = dict(d_model=32, n_layer=1, n_head=2, block_size=16)
    teacher = TinyLM(TinyLMConfig(vocab_size=32, **cfg)).eval()
    student = TinyLM(TinyLMConfig(vocab_size=40, **cfg))
    batch = torch.randint(0, 32, (3, 9))
    with pytest.raises(ValueError, match="40 tokens and the teacher's 32"):
        distillation_loss(teacher)(student, batch)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(ValueError, match="one tokenizer"):
        recover(student, batch, steps=2, batch_size=2, warmup=0, teacher=teacher)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())

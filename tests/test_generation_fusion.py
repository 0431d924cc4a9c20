"""generation.fusion: shapes, masks, identity start, gradients."""

from __future__ import annotations

import pytest
import torch

from generation.fusion import FusionConfig, InformationFusion


def _inputs(batch=2, length=5, k=3, exemplar_length=4, width=16):
    torch.manual_seed(0)
    states = torch.randn(batch, length, width)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 3:] = 0
    exemplars = torch.randn(batch, k, exemplar_length, width)
    exemplar_mask = torch.ones(batch, k, exemplar_length, dtype=torch.long)
    return states, mask, exemplars, exemplar_mask


def test_untrained_fusion_is_the_identity_and_output_has_input_shape():
    states, mask, exemplars, exemplar_mask = _inputs()
    fusion = InformationFusion(FusionConfig(d_model=16, heads=2, ffn_dim=32, dropout=0.0)).eval()
    fused = fusion(states, mask, exemplars, exemplar_mask)
    assert fused.shape == states.shape
    assert torch.allclose(fused, states * mask[..., None])


def test_masks_hide_padding_and_missing_exemplars():
    states, mask, exemplars, exemplar_mask = _inputs()
    fusion = InformationFusion(FusionConfig(d_model=16, heads=2, ffn_dim=32, dropout=0.0)).eval()
    for p in fusion.parameters():  # any non-trivial weights
        torch.nn.init.normal_(p, std=0.2)
    exemplar_mask[0, 2, :] = 0  # row 0: third exemplar missing
    exemplar_mask[1] = 0  # row 1: no exemplar at all
    fused = fusion(states, mask, exemplars, exemplar_mask)
    changed = exemplars.clone()
    changed[0, 2] = 100.0  # a masked exemplar cannot matter
    changed[1] = -100.0
    assert torch.allclose(fusion(states, mask, changed, exemplar_mask), fused)
    assert torch.allclose(fused[1], states[1] * mask[1, :, None])  # nothing retrieved: unchanged
    assert not torch.allclose(fused[0], states[0])
    assert torch.isfinite(fused).all() and (fused[1, 3:] == 0).all()


def test_gradients_reach_the_fusion_weights():
    states, mask, exemplars, exemplar_mask = _inputs()
    fusion = InformationFusion(FusionConfig(d_model=16, heads=2, ffn_dim=32, dropout=0.0))
    fusion(states, mask, exemplars, exemplar_mask).pow(2).sum().backward()
    assert fusion.attention.out_proj.weight.grad.abs().sum() > 0


def test_fusion_training_resumes_and_writes_a_loadable_generator(tmp_path):
    import pandas as pd

    from generation.fusion import RetrievalGenerator
    from generation.seq2seq import MoleculeSeq2Seq, Seq2SeqConfig
    from generation.train_fusion import FusionTrainConfig, train_fusion

    torch.manual_seed(0)
    tiny = Seq2SeqConfig(d_model=32, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=64,
                         dropout=0.0, max_length=32)
    seq2seq_path = MoleculeSeq2Seq(tiny).save(tmp_path / "seq2seq.pt")
    pairs = pd.DataFrame({
        "input": ["CCO", "CCN", "c1ccccc1", "CC(=O)O"],
        "target": ["CCCO", "CCCN", "Cc1ccccc1", "CCC(=O)O"],
        "exemplars": [["CCCCO", "OCCO"], ["CCCCN", "NCCN"], ["CCc1ccccc1"], []],
    })
    config = FusionTrainConfig(out_dir=str(tmp_path / "fusion"), seq2seq=str(seq2seq_path),
                               fusion={"heads": 2, "ffn_dim": 32, "dropout": 0.0}, n_val=1, k=2,
                               batch_size=3, max_steps=4, validate_every=2, threads=1, bf16=False)
    first = train_fusion(FusionTrainConfig(**{**config.__dict__, "max_steps": 2}), pairs, progress=False)
    assert first["step"] == 2
    state = train_fusion(config, pairs, progress=False)
    assert state["step"] == 4 and state["finished"]
    generator = RetrievalGenerator.load(tmp_path / "fusion" / "generator.pt")
    fused, mask = generator.fused_states(["CCO", "CCN"], [["CCCO"], []], k=2)
    assert fused.shape[0] == 2 and mask.shape == fused.shape[:2]
    plain, _ = generator.seq2seq.encode(["CCN"])
    assert torch.allclose(fused[1, : plain.shape[1]], plain[0], atol=1e-5)  # no exemplar: unchanged

    # Warm start of a new run from this run's fusion weights (after the BART was trained further).
    warm = FusionTrainConfig(**{**config.__dict__, "out_dir": str(tmp_path / "warm"), "max_steps": 0,
                                "init_fusion": str(tmp_path / "fusion" / "last.pt")})
    train_fusion(warm, pairs, progress=False)
    trained = torch.load(tmp_path / "fusion" / "last.pt", weights_only=False)["fusion"]
    started = torch.load(tmp_path / "warm" / "last.pt", weights_only=False)["fusion"]
    assert all(torch.equal(trained[name], started[name]) for name in trained)


def test_fusion_warm_start_from_a_missing_file_is_a_clear_error(tmp_path):
    from generation.errors import GenerationError
    from generation.train_fusion import _fusion_weights

    with pytest.raises(GenerationError, match="no such file"):
        _fusion_weights(tmp_path / "absent.pt")

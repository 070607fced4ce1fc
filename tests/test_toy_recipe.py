"""The teaching-model recipe runs end to end (tiny sizes, a few steps) and loads with from_pretrained."""
import json
from dataclasses import replace

import numpy as np
import pytest


@pytest.mark.slow
def test_tiny_recipe_end_to_end(tmp_path):
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from workbench.toy.__main__ import main

    out = tmp_path / "weights"
    assert main(["train", "--tiny", "--no-progress", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    info = json.loads((out / "training_info.json").read_text())
    assert info["n_clips"] == 8 and info["recipe"]["decoder_steps"] == 2
    model = MusicgenForConditionalGeneration.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.decoder.config.pad_token_id == model.decoder.config.vocab_size
    assert model.generation_config.decoder_start_token_id == model.decoder.config.vocab_size
    inputs = processor(text=["calm jazz"], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    audio = model.generate(**inputs, max_new_tokens=13)
    assert audio.shape == (1, 1, 10 * 640) and torch.isfinite(audio).all()
    # Audio + text through the reloaded processor (transformers#41598 would raise here).
    both = processor(audio=[np.zeros(3200, dtype=np.float32)], text=["rock"], sampling_rate=32000,
                     padding=True, return_tensors="pt")
    assert "input_values" in both
    assert json.loads((out / "tokenizer.json").read_text()).get("padding") is None
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stage"] == "done"


def test_the_default_recipe_made_the_shipped_weights(monkeypatch):
    import workbench.toy.__main__ as toy_main
    import workbench.toy.training.recipe as recipe_module
    from workbench.toy import WEIGHTS_DIR
    from workbench.toy.__main__ import main
    from workbench.toy.training.recipe import Recipe

    shipped = Recipe.from_dict(json.loads((WEIGHTS_DIR / "training_info.json").read_text())["recipe"])
    assert shipped == Recipe.v3() and shipped not in (Recipe.v2(), Recipe.v1()) and Recipe() == Recipe.v1()
    v3 = Recipe.v3()
    assert v3.synth_version == 2 and v3.judge_clips_per_genre > 0 and v3.sizes.codec_lstm_layers == 0
    assert v3.codec_comb_weight > 0 and v3.decoder_resid_push == 0
    seen = {}

    def fake_train(recipe, *args, **kwargs):
        seen["recipe"] = recipe
        return {"timings_s": {}}

    # patched where `python -m workbench.toy train` looks it up (its module imports it by name): patching only the
    # recipe module let the real v2 training run inside the test
    monkeypatch.setattr(recipe_module, "train_teaching_model", fake_train)
    monkeypatch.setattr(toy_main, "train_teaching_model", fake_train)
    assert main(["train", "--no-progress", "--output-dir", "unused"]) == 0  # no recipe flags
    assert seen["recipe"] == shipped
    assert Recipe.tiny().synth_version == 1 and Recipe.tiny().judge_clips_per_genre == 0
    v1_saved = {k: v for k, v in Recipe.v1().to_dict().items()
                if k not in ("synth_version", "vocab_size", "judge_clips_per_genre")}
    assert Recipe.from_dict(v1_saved) == Recipe.v1()  # a recipe saved before those fields existed


def test_recipe_round_trips_and_rejects_bad_resume(tmp_path):
    from workbench.toy.training.recipe import Recipe, train_teaching_model

    recipe = Recipe.tiny()
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "recipe.json").write_text(json.dumps(Recipe().to_dict()))
    with pytest.raises(ValueError, match="drop --resume"):
        train_teaching_model(recipe, tmp_path / "out", work_dir=tmp_path / "work", resume=True)


@pytest.mark.slow
def test_resume_reuses_the_codec_when_only_decoder_settings_change(tmp_path):
    from dataclasses import replace

    from workbench.toy.training.recipe import Recipe, codec_fields, train_teaching_model

    recipe, work = Recipe.tiny(), tmp_path / "work"
    train_teaching_model(recipe, tmp_path / "a", work_dir=work, progress=False)
    longer = replace(recipe, decoder_steps=3)
    assert codec_fields(longer) == codec_fields(recipe)
    info = train_teaching_model(longer, tmp_path / "b", work_dir=work, resume=True, progress=False)
    assert info["recipe"]["decoder_steps"] == 3
    log = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert dict(stage="codec", resumed=True) in [{k: v for k, v in r.items() if k != "time"} for r in log]
    with pytest.raises(ValueError, match="codec settings differ"):
        train_teaching_model(replace(recipe, codec_ae_steps=3), tmp_path / "c", work_dir=work, resume=True,
                             progress=False)


@pytest.mark.slow
def test_tiny_v2_recipe_trains_on_factor_prompts(tmp_path):
    from workbench.toy.__main__ import main
    from workbench.toy.judge import MODEL_JUDGE_FILE

    out = tmp_path / "weights"
    assert main(["train", "--tiny", "--synth-version", "2", "--no-progress", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    info = json.loads((out / "training_info.json").read_text())
    assert info["recipe"]["synth_version"] == 2 and info["n_clips"] == 8
    from workbench.toy import synth_version
    assert synth_version(out) == 2 and synth_version(tmp_path) == 1  # no training_info: v1
    tokens = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert any(piece.strip("▁") in ("crescendo", "diminuendo") for piece, _ in tokens)
    assert not (out / MODEL_JUDGE_FILE).exists()  # the tiny recipe fits no judge of its own


@pytest.mark.slow
def test_a_v2_recipe_writes_its_own_judge_next_to_the_weights(tmp_path):
    from workbench.toy.__main__ import main
    from workbench.toy.judge import MODEL_JUDGE_FILE, load_judge, v2_judge_path

    out = tmp_path / "weights"
    assert main(["train", "--tiny", "--synth-version", "2", "--judge-clips-per-genre", "1", "--no-progress",
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    assert v2_judge_path(out) == out / MODEL_JUDGE_FILE and load_judge(out / MODEL_JUDGE_FILE).classes
    info = json.loads((out / "training_info.json").read_text())
    assert info["recipe"]["judge_clips_per_genre"] == 1 and "judge_s" in info["timings_s"]
    with pytest.raises(ValueError, match="synth_version=2"):
        main(["train", "--tiny", "--judge-clips-per-genre", "1", "--no-progress", "--output-dir",
              str(tmp_path / "v1"), "--work-dir", str(tmp_path / "work1")])


def test_a_codec_without_lstm_has_local_codes_and_keeps_them_local_through_training():
    # A click moves the latents of a handful of frames only; with the LSTM it moves every later frame.
    import numpy as np
    import torch

    from workbench.toy.architecture import ToySizes, build_codec
    from workbench.toy.training.codec_training import CodecTraining, train_codec

    def frames_moved(codec):
        x = torch.randn(1, 1, 32000, generator=torch.Generator().manual_seed(0)) * 0.1
        y = x.clone()
        y[..., 8000] += 1.0  # at 0.25 s of 1 s
        with torch.no_grad():
            moved = (codec.encoder(x) - codec.encoder(y)).abs().amax(1)[0] > 0
        return int(moved.sum())

    sizes = ToySizes(codec_filters=4, codec_hidden=16, codebook_size=32)
    local = build_codec(ToySizes(**{**sizes.to_dict(), "codec_lstm_layers": 0}))
    train_codec(local, np.random.default_rng(0).standard_normal((4, 16000)).astype(np.float32) * 0.1,
                CodecTraining(ae_steps=2, vq_steps=2, batch_size=2), progress=False)
    assert frames_moved(local) <= 10
    assert frames_moved(build_codec(sizes).eval()) >= 30


@pytest.mark.slow
def test_more_decoder_clips_leave_the_codec_as_it_was(tmp_path):
    """decoder_clips_per_genre adds clips for the decoder only: the codec trains on the same first
    n_per_genre clips of each genre, so its weights match a run without the extra clips; the
    recipe's sample_temperature lands in the generation config."""
    from dataclasses import replace

    import torch
    from transformers import EncodecModel

    from workbench.toy.training.recipe import Recipe, codec_fields, train_teaching_model

    recipe = Recipe.tiny()
    more = replace(recipe, decoder_clips_per_genre=3, sample_temperature=0.8)
    assert codec_fields(more) == codec_fields(recipe) and Recipe.from_dict(more.to_dict()) == more
    info_a = train_teaching_model(recipe, tmp_path / "a", work_dir=tmp_path / "wa", progress=False)
    info_b = train_teaching_model(more, tmp_path / "b", work_dir=tmp_path / "wb", progress=False)
    assert (info_a["n_clips"], info_b["n_clips"]) == (8, 12)
    assert json.loads((tmp_path / "a" / "generation_config.json").read_text())["temperature"] == 1.0
    a = EncodecModel.from_pretrained(tmp_path / "wa" / "codec").state_dict()
    b = EncodecModel.from_pretrained(tmp_path / "wb" / "codec").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    import workbench as wb
    assert wb.load_model(tmp_path / "b").default_temperature == 0.8  # the recipe's sampling temperature
    with pytest.raises(ValueError, match="decoder_clips_per_genre=1 is below n_per_genre=2"):
        train_teaching_model(replace(recipe, decoder_clips_per_genre=1), tmp_path / "c", work_dir=tmp_path / "wc",
                             progress=False)


def test_a_v3_1_recipe_trains_v3s_codec_and_its_decoder_on_clips_with_and_without_bass(tmp_path):
    """codec_synth_version: the codec trains on synthesiser 2's clips (the same codec as a v2-data run, so a work
    dir's codec is reused across the two), the decoder on synth_v3's (bass present or absent)."""
    from dataclasses import replace

    import torch
    from transformers import EncodecModel

    from workbench.toy import synth_version
    from workbench.toy.training.recipe import Recipe, codec_fields, train_teaching_model

    v2 = replace(Recipe.tiny(), synth_version=2)
    v3_1 = replace(v2, synth_version=3, codec_synth_version=2)
    assert codec_fields(v3_1) == codec_fields(v2) != codec_fields(replace(v2, synth_version=3))
    assert Recipe.v3_1().codec_data_version() == 2 and Recipe.from_dict(Recipe.v3_1().to_dict()) == Recipe.v3_1()
    assert codec_fields(Recipe.v3_1()) == codec_fields(Recipe.v3())
    train_teaching_model(v2, tmp_path / "a", work_dir=tmp_path / "wa", progress=False)
    info = train_teaching_model(v3_1, tmp_path / "b", work_dir=tmp_path / "wb", progress=False)
    a = EncodecModel.from_pretrained(tmp_path / "wa" / "codec").state_dict()
    b = EncodecModel.from_pretrained(tmp_path / "wb" / "codec").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert synth_version(tmp_path / "b") == 3 and info["recipe"]["codec_synth_version"] == 2
    resumed = train_teaching_model(v3_1, tmp_path / "c", work_dir=tmp_path / "wa", resume=True, progress=False)
    assert resumed["recipe"]["synth_version"] == 3  # v2's work dir: its codec, no codec clips synthesised


def test_training_settings_are_checked_when_made():
    """The codec and decoder stages take one checked settings object each (issue 32)."""
    from workbench.errors import BadInputError, WrongTypeError
    from workbench.toy.training.codec_training import CodecTraining, train_codec
    from workbench.toy.training.decoder_training import DecoderTraining, train_decoder

    with pytest.raises(BadInputError, match="crop_s=0 must be positive"):
        CodecTraining(crop_s=0)
    with pytest.raises(BadInputError, match="batch_size=0"):
        CodecTraining(batch_size=0)
    with pytest.raises(ValueError, match=r"cond_dropout must be in \[0, 1\), got 1.0"):
        DecoderTraining(cond_dropout=1.0)
    with pytest.raises(WrongTypeError, match="not a CodecTraining"):
        train_codec(None, np.zeros((2, 16000), np.float32), {"ae_steps": 2})
    with pytest.raises(WrongTypeError, match="not a DecoderTraining"):
        train_decoder(None, None, np.zeros((2, 4, 10)), ["jazz", "rock"], {"steps": 2})


def _tiny_decoder(seed=0):
    from workbench.toy.architecture import ToySizes, build_codec, build_musicgen
    from workbench.toy.tokenizer import build_tokenizer

    sizes = ToySizes(codebook_size=16, decoder_layers=2, decoder_hidden=32, codec_filters=4)
    tok = build_tokenizer()
    return build_musicgen(sizes, build_codec(sizes), len(tok), seed=seed), tok


def test_residual_pushes_change_training_are_seeded_and_leave_no_hook():
    """decoder_resid_push: a constant random push per row at one layer per step, while training only."""
    import torch

    from workbench.toy.training.decoder_training import DecoderTraining, ResidualPushes, train_decoder

    codes = np.random.default_rng(0).integers(0, 16, size=(8, 4, 20))
    labels = ["jazz", "rock"] * 4

    def trained(push):
        model, tok = _tiny_decoder()
        train_decoder(model, tok, codes, labels, DecoderTraining(steps=3, batch_size=4, resid_push=push),
                      progress=False)
        return torch.cat([p.detach().flatten() for p in model.decoder.parameters()]), model

    plain, model = trained(0.0)
    pushed_a, model_a = trained(0.5)
    pushed_b, _ = trained(0.5)
    assert not torch.equal(plain, pushed_a) and torch.equal(pushed_a, pushed_b)
    assert all(not layer._forward_hooks for layer in model_a.decoder.model.decoder.layers)  # removed after training

    # the push: constant over positions, of norm u x the layer's mean norm with u < largest, on one layer only
    layers = model.decoder.model.decoder.layers
    pushes = ResidualPushes(layers, 0.5, seed=0)
    pushes.next_step()
    layer = layers[pushes.layer]
    layer.train()
    hidden = torch.randn(3, 7, 32)
    out = pushes._hook(pushes.layer)(layer, (), (hidden,))[0]
    delta = out - hidden
    assert torch.allclose(delta, delta[:, :1].expand_as(delta))
    assert (delta[:, 0].norm(dim=-1) < 0.5 * hidden.norm(dim=-1).mean()).all()
    assert pushes._hook((pushes.layer + 1) % len(layers))(layer, (), (hidden,)) is None
    layer.eval()
    assert pushes._hook(pushes.layer)(layer, (), (hidden,)) is None  # never at inference
    pushes.remove()
    with pytest.raises(Exception, match="resid_push"):
        DecoderTraining(resid_push=-1.0)


def test_factor_keep_names_the_factors_in_more_prompts_and_reaches_the_decoder(monkeypatch, tmp_path):
    """Recipe.factor_keep (session 21's trial): the chance a training prompt names each non-genre factor."""
    from workbench.toy.prompts import FACTOR_KEEP, FACTOR_WORDS, factor_keep, factor_prompt
    from workbench.toy.synth_v2 import clip_factors
    from workbench.toy.training import recipe as recipe_module
    from workbench.toy.training.decoder_training import DecoderTraining
    from workbench.toy.training.recipe import Recipe, train_teaching_model

    def named(keep, n=200):
        rng, hits = np.random.default_rng(0), 0
        for i in range(n):
            f = clip_factors("jazz", i)
            prompt = factor_prompt(f, rng, keep=keep)
            hits += any(w in prompt for w in FACTOR_WORDS["dynamics"][f["dynamics"]])
        return hits / n

    assert factor_keep(None) == FACTOR_KEEP and factor_keep(1.0)["genre"] == FACTOR_KEEP["genre"]
    assert named(factor_keep(1.0)) == 1.0 and named(None) < 0.6  # FACTOR_KEEP names dynamics 0.4 of the time
    with pytest.raises(ValueError, match="factor_keep"):
        DecoderTraining(factor_keep=1.5)
    with pytest.raises(ValueError, match="factor_keep"):
        train_teaching_model(replace(Recipe.tiny(), factor_keep=0.8), tmp_path / "v1", work_dir=tmp_path / "w1",
                             progress=False)  # v1 data has no factors
    seen = {}
    real = recipe_module.train_decoder

    def spy(model, tokenizer, codes, labels, config, **kw):
        seen["config"] = config
        return real(model, tokenizer, codes, labels, config, **kw)

    monkeypatch.setattr(recipe_module, "train_decoder", spy)
    tiny_v2 = replace(Recipe.tiny(), synth_version=2, factor_keep=0.8, vocab_size=384)
    train_teaching_model(tiny_v2, tmp_path / "out", work_dir=tmp_path / "work", progress=False)
    assert seen["config"].factor_keep == 0.8
    assert Recipe.from_dict(tiny_v2.to_dict()) == tiny_v2
    assert Recipe.v3().factor_keep is None  # the shipped recipe: FACTOR_KEEP

    # the decoder trains on other prompts with it (same seed, same batches)
    import torch

    from workbench.toy.training.decoder_training import train_decoder
    codes = np.random.default_rng(0).integers(0, 16, size=(8, 4, 20))
    labels = [clip_factors(g, i) for i in range(2) for g in ("jazz", "rock", "classical", "electronic")]

    def trained(keep):
        model, tok = _tiny_decoder()
        train_decoder(model, tok, codes, labels, DecoderTraining(steps=3, batch_size=4, factor_keep=keep),
                      progress=False)
        return torch.cat([p.detach().flatten() for p in model.decoder.parameters()])

    assert not torch.equal(trained(None), trained(1.0)) and torch.equal(trained(None), trained(None))

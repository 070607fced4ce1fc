"""Where directions and probes are saved: the name given is the name written (issue 9), old saves load,
and unreadable files raise CorruptFileError naming the file."""
import json

import numpy as np
import pytest

from workbench.analysis.directions import Direction
from workbench.analysis.probes import LinearProbe
from workbench.errors import BadInputError, CorruptFileError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MID = "random/tiny@seed0"


def make_direction(seed: int = 0) -> Direction:
    return Direction(np.random.default_rng(seed).normal(size=8).astype(np.float32), MID, 2, method="manual")


def make_probe(seed: int = 0) -> LinearProbe:
    rng = np.random.default_rng(seed)
    y = np.arange(30) % 2
    return LinearProbe(C=0.5 + seed).fit(rng.normal(size=(30, 4)) + y[:, None], y)


KINDS = {"direction": (make_direction, Direction.load, lambda d: d.vector),
         "probe": (make_probe, LinearProbe.load, lambda p: p.coef_)}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


def test_names_with_dots_are_two_files(tmp_path, kind):
    make, load, weights = kind
    first, second = make(0), make(1)
    path_10, path_15 = first.save(tmp_path / "rock_s1.0"), second.save(tmp_path / "rock_s1.5")
    assert (path_10.name, path_15.name) == ("rock_s1.0.safetensors", "rock_s1.5.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rock_s1.0.safetensors", "rock_s1.0.safetensors.json",
                                                         "rock_s1.5.safetensors", "rock_s1.5.safetensors.json"]
    np.testing.assert_array_equal(weights(load(tmp_path / "rock_s1.0")), weights(first))
    np.testing.assert_array_equal(weights(load(tmp_path / "rock_s1.5")), weights(second))


def test_saving_keeps_a_clips_json_of_the_same_stem(tmp_path, kind):
    make, load, weights = kind
    clip_meta = tmp_path / "rock.json"
    clip_meta.write_text('{"prompt": "rock music", "seed": 3}')
    path = make().save(tmp_path / "rock")
    assert clip_meta.read_text() == '{"prompt": "rock music", "seed": 3}'
    assert path.name == "rock.safetensors" and (tmp_path / "rock.safetensors.json").is_file()
    assert load(tmp_path / "rock") is not None


def test_load_takes_the_stem_the_full_name_or_the_sidecar(tmp_path, kind):
    make, load, weights = kind
    saved = make()
    path = saved.save(tmp_path / "sub" / "rock.safetensors")  # a name ending in .safetensors is kept
    assert path == tmp_path / "sub" / "rock.safetensors"
    for name in ("rock", "rock.safetensors", "rock.safetensors.json"):
        np.testing.assert_array_equal(weights(load(tmp_path / "sub" / name)), weights(saved))
    with pytest.raises(FileNotFoundError, match="no saved"):
        load(tmp_path / "sub" / "jazz")


def _write_old_layout(tmp_path, stem: str, embed: bool = True):
    """What `Direction.save` wrote before issue 9: <stem>.safetensors + <stem>.json."""
    from safetensors.numpy import save_file
    d = make_direction()
    text = json.dumps(dict(model_id=MID, layer=5, site="mlp", method="class_means", hidden_size=8,
                           provenance={"name": "old"}, format="workbench.direction/1"))
    save_file({"vector": d.vector}, str(tmp_path / f"{stem}.safetensors"),
              metadata={"workbench": text} if embed else None)
    (tmp_path / f"{stem}.json").write_text(text)
    return d


@pytest.mark.parametrize("embed", [True, False])
def test_the_old_layout_still_loads(tmp_path, embed):
    d = _write_old_layout(tmp_path, "rock", embed=embed)
    for name in ("rock", "rock.safetensors"):
        back = Direction.load(tmp_path / name, expect_model_id=MID)
        assert (back.layer, back.site, back.name) == (5, "mlp", "old")
        np.testing.assert_array_equal(back.vector, d.vector)


def test_an_old_sidecar_that_is_not_ours_is_ignored(tmp_path):
    _write_old_layout(tmp_path, "rock", embed=True)
    (tmp_path / "rock.json").write_text('{"prompt": "a clip\'s own metadata"}')
    assert Direction.load(tmp_path / "rock").layer == 5  # from the safetensors header


def test_an_old_dotted_name_is_not_silently_swapped(tmp_path):
    _write_old_layout(tmp_path, "rock_s1")  # what save("rock_s1.0") or save("rock_s1.5") used to write
    with pytest.raises(FileNotFoundError, match="rock_s1.safetensors"):
        Direction.load(tmp_path / "rock_s1.0")
    assert Direction.load(tmp_path / "rock_s1").layer == 5


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_a_corrupt_sidecar_names_the_file(tmp_path, kind, text):
    make, load, weights = kind
    path = make().save(tmp_path / "rock")
    sidecar = tmp_path / "rock.safetensors.json"
    sidecar.write_text(text)
    with pytest.raises(CorruptFileError, match="rock.safetensors.json") as info:
        load(path)
    assert info.value.path == str(sidecar)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_safetensors_file_names_the_file(tmp_path, kind, damage):
    make, load, weights = kind
    path = make().save(tmp_path / "rock")
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00\x01 not a safetensors file" * 4, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    with pytest.raises(CorruptFileError, match="rock.safetensors") as info:
        load(path)
    assert info.value.path == str(path) and isinstance(info.value, OSError)


def test_a_probe_sidecar_with_bad_params_is_corrupt(tmp_path):
    path = make_probe().save(tmp_path / "probe")
    sidecar = tmp_path / "probe.safetensors.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(dict(meta, params=dict(meta["params"], kind="lasso"))))
    with pytest.raises(CorruptFileError, match="probe.safetensors.json"):
        LinearProbe.load(path)
    sidecar.write_text(json.dumps({k: v for k, v in meta.items() if k != "classes"}))
    with pytest.raises(CorruptFileError, match="re-save the probe"):
        LinearProbe.load(path)


def test_a_direction_metadata_field_of_the_wrong_type_is_corrupt(tmp_path):
    path = make_direction().save(tmp_path / "rock")
    sidecar = tmp_path / "rock.safetensors.json"
    sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()), layer="five")))
    with pytest.raises(CorruptFileError, match="layer is 'five'"):
        Direction.load(path)


def test_the_wrong_loader_says_which_one_to_use(tmp_path):
    probe_path = make_probe().save(tmp_path / "p")
    with pytest.raises(BadInputError, match="holds a saved probe, not a direction: load it with LinearProbe.load"):
        Direction.load(probe_path)
    direction_path = make_direction().save(tmp_path / "d")
    with pytest.raises(BadInputError, match="use Direction.load|load it with Direction.load"):
        LinearProbe.load(direction_path)

"""Standard codes in class files: the YAML and CSV forms read the same, bad values are refused naming the
file and class, the built-in Sewer-ML set carries none, and the codes survive a save and an export sidecar."""
import pytest
import yaml

from sfr_jax.text.classes import ClassSetError, load_class_set, sewerml

ROWS = [{"code": "RB", "phrase": "Cracks", "description": "a crack in the pipe wall", "seen": True,
         "codes": {"en13508": "BAB", "pacp": "CL"}},
        {"code": "RO", "phrase": "Roots", "description": "roots growing into the pipe", "seen": True,
         "codes": {"en13508": "BBA"}},
        {"code": "XX", "phrase": "Other", "description": "something else in the pipe", "seen": False}]


def _yaml(tmp_path, rows, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "mine", "classes": rows}))
    return str(path)


def test_yaml_and_csv_forms_give_the_same_codes(tmp_path):
    from_yaml = load_class_set(_yaml(tmp_path, ROWS), check_length=False)
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("code,phrase,description,seen,codes.en13508,codes.pacp\n"
                        "RB,Cracks,a crack in the pipe wall,true,BAB,CL\n"
                        "RO,Roots,roots growing into the pipe,true,BBA,\n"
                        "XX,Other,something else in the pipe,false,,\n")
    from_csv = load_class_set(str(csv_path), check_length=False)
    want = [(("en13508", "BAB"), ("pacp", "CL")), (("en13508", "BBA"),), ()]
    assert [c.standard_codes for c in from_yaml.classes] == want
    assert [c.standard_codes for c in from_csv.classes] == want
    saved = tmp_path / "saved.yaml"
    from_csv.save(str(saved))
    assert load_class_set(str(saved), check_length=False).classes == from_csv.classes


@pytest.mark.parametrize("codes, says", [("BAB", "must map a standard"), ({"en 13508": "BAB"}, "standard's name"),
                                         ({"pacp": ["CL", "CM"]}, "expected one code")])
def test_bad_codes_are_refused_naming_file_and_class(tmp_path, codes, says):
    rows = [dict(ROWS[0], codes=codes)]
    path = _yaml(tmp_path, rows)
    with pytest.raises(ClassSetError) as error:
        load_class_set(path, check_length=False)
    assert path in str(error.value) and "RB" in str(error.value) and says in str(error.value)


def test_builtin_sewerml_ships_no_standard_codes():
    # no published mapping from Sewer-ML's classes to EN 13508-2 or PACP exists (README, "Standard codes")
    assert all(c.standard_codes == () for c in sewerml().classes)


def test_export_sidecars_carry_the_codes(tmp_path):
    from export_fixtures import random_sfr
    from sfr_jax.convert import export
    from sfr_jax.convert.torch_model import SFRNetTorch
    from sfr_jax.text.classes import ClassSet
    import dataclasses
    import json

    model, classes = random_sfr(seed=1)
    coded = ClassSet(classes.name, [dataclasses.replace(c, standard_codes=(("en13508", f"B{c.code}"),))
                                    for c in classes.classes])
    _, side = export.export_reference(model, coded, str(tmp_path / "run.pth"))
    got = json.load(open(side))["classes"]
    assert [c["codes"] for c in got] == [{"en13508": f"B{c.code}"} for c in classes.classes]
    SFRNetTorch.from_export(str(tmp_path / "run.pth"))  # the module still reads the sidecar

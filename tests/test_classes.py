"""Class sets: the built-in Sewer-ML / WZ-Pipe sets against SPEC §8, user files and their errors."""
import os
from importlib import resources

import numpy as np
import pytest

from sfr_jax.text.classes import ClassSetError, ClassSet, DefectClass, load_class_set, sewerml, wzpipe
from sfr_jax.text.tokenizer import ClipTokenizer

SEWER_SEEN = "RB OB PF DE FS RO IN AF BE GR PH OK".split()
SEWER_UNSEEN = "PB IS OP FO OS".split()
SEWER_CIW = {"RB": 1.0, "OB": 0.5518, "PF": 0.2896, "DE": 0.1622, "FS": 0.6419, "IS": 0.1847, "RO": 0.3559,
             "IN": 0.3131, "AF": 0.0811, "BE": 0.2275, "FO": 0.2477, "GR": 0.0901, "PH": 0.4167, "PB": 0.4167,
             "OS": 0.9009, "OP": 0.3829, "OK": 0.4396}
SEWER_NAMES = {"RB": "Cracks, breaks, and collapses", "OB": "Surface damage", "PF": "Production error",
               "DE": "Deformation", "FS": "Displaced joint", "IS": "Intruding sealing material", "RO": "Roots",
               "IN": "Infiltration", "AF": "Settled deposits", "BE": "Attached deposits", "FO": "Obstacle",
               "GR": "Branch pipe", "PH": "Chiseled connection", "PB": "Drilled connection",
               "OS": "Lateral reinstatement cuts", "OP": "Connection with transition profile",
               "OK": "Connection with construction changes"}
WZ_CODES = "AJ BJ BX CK CR FS JG PL QF SL TJ ZW CQ FZ TL SG CJ".split()
WZ_PHRASES = ["Lateral Branch Connection Defect", "Abnormal Pipe Diameter", "Pipe Deformation by Compression",
              "Joint Outlet Lateral Misalignment", "Foreign Object Penetrating Pipe", "Pipe Wall Corrosion/Spalling",
              "Pipe Wall Deposits", "Pipe External Rupture", "Joint Outlet Longitudinal Misalignment",
              "External Water Ingress", "Pipe Joint Disconnection", "Internal Pipe Obstruction",
              "Test Sealant Residue", "Pipe Water Surface Floaters", "Joint Material Ingress",
              "Root Intrusion in Pipe", "Pipe Bottom Sedimentation"]


@pytest.fixture(scope="module")
def tokenizer():
    return ClipTokenizer.default()


def test_sewerml_matches_spec(tokenizer):
    s = sewerml()
    assert list(s.codes) == SEWER_SEEN + SEWER_UNSEEN
    assert s.seen_ids == tuple(range(12)) and s.unseen_ids == tuple(range(12, 17))
    assert s.ids("train") == s.seen_ids and s.ids("zsl") == s.unseen_ids and s.ids("gzsl") == tuple(range(17))
    assert list(s.phrases) == [SEWER_NAMES[c] for c in s.codes]
    np.testing.assert_allclose(s.ciw, [SEWER_CIW[c] for c in s.codes])
    s.check_lengths(tokenizer)  # every description fits the 77-token context
    assert len(set(s.descriptions)) == 17 and all(len(d.split()) >= 12 for d in s.descriptions)
    with pytest.raises(ValueError, match="unknown mode"):
        s.ids("test")


def test_wzpipe_matches_spec(tokenizer):
    w = wzpipe()
    assert list(w.codes) == WZ_CODES and list(w.phrases) == WZ_PHRASES
    assert w.seen_ids == tuple(range(12)) and w.unseen_ids == tuple(range(12, 17)) and w.ciw is None
    w.check_lengths(tokenizer)
    assert len(set(w.descriptions)) == 17


def test_builtin_sets_are_package_data():
    names = {p.name for p in resources.files("sfr_jax.text").joinpath("data").iterdir()}
    assert {"sewerml.yaml", "wzpipe.yaml"} <= names
    with open(os.path.join(os.path.dirname(__file__), os.pardir, "setup.py")) as f:
        assert '"sfr_jax.text": ["data/*"]' in f.read()  # installed with the package, not only in a checkout


def test_user_yaml_and_csv_and_roundtrip(tmp_path, tokenizer):
    y = tmp_path / "mine.yaml"
    y.write_text("name: mine\nclasses:\n"
                 "  - {code: CR, phrase: Crack, description: 'A sewer CCTV image of a cracked wall.', seen: true}\n"
                 "  - {code: HO, phrase: Hole, description: 'A sewer CCTV image of a hole.', seen: unseen}\n")
    s = load_class_set(str(y), tokenizer=tokenizer)
    assert s.name == "mine" and s.codes == ("CR", "HO") and s.seen_ids == (0,) and s.unseen_ids == (1,)
    c = tmp_path / "mine.csv"
    c.write_text('code,phrase,description,seen,ciw\nCR,Crack,"A sewer CCTV image of a cracked wall.",1,0.5\n'
                 'HO,Hole,"A sewer CCTV image of a hole.",false,1\n')
    s2 = load_class_set(str(c), tokenizer=tokenizer)
    assert s2.codes == s.codes and s2.seen_ids == (0,) and list(s2.ciw) == [0.5, 1.0] and s2.name == "mine"
    s2.save(str(tmp_path / "saved.yaml"))
    assert load_class_set(str(tmp_path / "saved.yaml"), tokenizer=tokenizer) == s2


@pytest.mark.parametrize("body,match", [
    ("- {code: A, phrase: a, description: d, seen: true}\n- {code: A, phrase: b, description: e, seen: false}\n",
     "duplicate code 'A'"),
    ("- {code: A, phrase: a, seen: true}\n", "missing field 'description'"),
    ("- {code: A, phrase: a, description: '  ', seen: true}\n", "missing field 'description'"),
    ("- {code: A, phrase: a, description: d, seen: maybe}\n", "seen must be true/false"),
    ("- {code: A, phrase: a, description: d, seen: true, colour: red}\n", r"unknown field\(s\) \['colour'\]"),
    ("- {code: A, phrase: a, description: d, seen: true, ciw: heavy}\n", "ciw must be a number"),
    ("[]\n", "non-empty list"),
])
def test_user_yaml_errors_name_file_and_class(tmp_path, tokenizer, body, match):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ClassSetError, match=match) as err:
        load_class_set(str(path), tokenizer=tokenizer)
    assert str(path) in str(err.value)


def test_other_errors(tmp_path, tokenizer):
    long = "A sewer CCTV image of " + " ".join(["corroded"] * 80)
    path = tmp_path / "long.csv"
    path.write_text(f"code,phrase,description,seen\nLG,Long,{long},true\n")
    with pytest.raises(ClassSetError, match=r"long.csv: class LG: description is longer than the CLIP context"):
        load_class_set(str(path), tokenizer=tokenizer)
    assert load_class_set(str(path), check_length=False).codes == ("LG",)
    bad_header = tmp_path / "hdr.csv"
    bad_header.write_text("code,name,description,seen\nA,a,d,1\n")
    with pytest.raises(ClassSetError, match=r"hdr.csv: CSV header .* lacks column\(s\) \['phrase'\]"):
        load_class_set(str(bad_header))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ClassSetError, match="must end in .yaml"):
        load_class_set(str(tmp_path / "x.json"))
    with pytest.raises(FileNotFoundError, match="neither a built-in"):
        load_class_set(str(tmp_path / "missing.yaml"))


def test_with_descriptions(tmp_path, tokenizer):
    s = sewerml()
    lines = [f"A sewer CCTV image number {i} of some defect." for i in range(17)]
    path = tmp_path / "de.txt"
    path.write_text("\n".join(lines) + "\n\n")  # trailing blank lines are ignored
    t = s.with_descriptions(str(path))
    assert list(t.descriptions) == lines and t.codes == s.codes and t.phrases == s.phrases
    assert np.array_equal(t.ciw, s.ciw)
    assert load_class_set("sewerml", descriptions=str(path), tokenizer=tokenizer).descriptions == t.descriptions
    path.write_text("\n".join(lines[:16]))
    with pytest.raises(ClassSetError, match=r"de.txt: 16 non-empty lines, expected one per class \(17\)"):
        s.with_descriptions(str(path))
    with pytest.raises(ClassSetError, match="duplicate code"):
        ClassSet("x", [DefectClass("A", "a", "d", True), DefectClass("A", "b", "e", False)])

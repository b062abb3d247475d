"""Class files: codes are tokens (one rule, checked where class sets are made, the error naming the file, the
row and the code), and a CSV saved by Excel (BOM, CRLF, ';', spaces after separators, trailing empty
columns) loads exactly like the plain file. Every bad code and every dialect is invented here."""
import pytest

from sfr_jax.text.classes import ClassSet, ClassSetError, DefectClass, load_class_set

PLAIN = ("code,phrase,description,seen\n"
         "RB,Cracks,\"A sewer pipe with cracks, breaks or a collapse\",true\n"
         "X-2_b,Odd thing,A sewer pipe with an odd thing,false\n")


def _write(path, text, encoding="utf-8", newline="\n"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text.replace("\n", newline))
    return str(path)


@pytest.mark.parametrize("code", [
    "a/../../../../x", "../x", "a/b", "a\\b", "a\x00b", ".hidden", "..", "x" * 33, "Rißbildung", "R B", "-RB",
    "RB.", "RB;rm", "\u202eRB", "RB\u00a0X", "_RB",
])
def test_a_code_that_is_not_a_token_names_file_row_and_code(tmp_path, code):
    quoted = code.replace('"', '""')
    path = _write(tmp_path / "c.csv", PLAIN + f'"{quoted}",Thing,A sewer pipe with a thing,false\n')
    with pytest.raises(ClassSetError) as error:
        load_class_set(path, check_length=False)
    message = str(error.value)
    assert path in message and "line 4" in message and repr(code.strip()) in message, message


def test_yaml_codes_are_checked_by_the_same_rule(tmp_path):
    path = _write(tmp_path / "c.yaml", "classes:\n  - {code: RB, phrase: a, description: a pipe, seen: true}\n"
                                      "  - {code: 'x/../y', phrase: b, description: b pipe, seen: false}\n")
    with pytest.raises(ClassSetError, match=r"c.yaml: class #2: code 'x/../y' is not allowed"):
        load_class_set(path, check_length=False)


def test_codes_made_in_code_and_codes_differing_only_in_case_are_refused():
    good = DefectClass("RB", "a", "a pipe", True)
    with pytest.raises(ClassSetError, match=r"code 'a/b' is not allowed"):
        ClassSet("mine", [good, DefectClass("a/b", "b", "b pipe", False)])
    with pytest.raises(ClassSetError, match=r"'rb' differs from 'RB' only in case"):
        ClassSet("mine", [good, DefectClass("rb", "b", "b pipe", False)])
    assert ClassSet("mine", [good, DefectClass("9x_Y-z", "b", "b pipe", False)]).codes == ("RB", "9x_Y-z")


def _classes(path):
    return load_class_set(path, check_length=False).classes


@pytest.mark.parametrize("name, text, encoding, newline", [
    ("bom_crlf", PLAIN, "utf-8-sig", "\r\n"),
    ("bom", PLAIN, "utf-8-sig", "\n"),
    ("cr_only_lines", PLAIN, "utf-8", "\r"),
    ("semicolons", PLAIN.replace(",", ";").replace("cracks; breaks", "cracks, breaks"), "utf-8-sig", "\r\n"),
    ("tabs", PLAIN.replace(",", "\t").replace("cracks\t breaks", "cracks, breaks"), "utf-8", "\n"),
    ("spaces_after_commas", PLAIN.replace(",", ", ").replace("cracks,  breaks", "cracks, breaks"), "utf-8", "\n"),
    ("trailing_empty_columns", PLAIN.replace("\n", ",,\n"), "utf-8-sig", "\r\n"),
    ("header_case_and_blank_rows", PLAIN.replace("code,phrase", "Code, Phrase") + "\n,,,\n", "utf-8", "\n"),
])
def test_excel_dialects_load_like_the_plain_file(tmp_path, name, text, encoding, newline):
    plain = _classes(_write(tmp_path / "plain.csv", PLAIN))
    assert [c.code for c in plain] == ["RB", "X-2_b"]  # the plain file itself, by hand
    assert plain[0].description == "A sewer pipe with cracks, breaks or a collapse" and plain[1].seen is False
    assert _classes(_write(tmp_path / f"{name}.csv", text, encoding, newline)) == plain


def test_dialect_accidents_that_lose_data_are_errors(tmp_path):
    stray = _write(tmp_path / "stray.csv", PLAIN.replace("\n", ",\n").replace(",false,", ",false,oops"))
    with pytest.raises(ClassSetError, match=r"stray.csv: line 3: value 'oops' under a column without a name"):
        load_class_set(stray, check_length=False)
    cp1252 = _write(tmp_path / "latin.csv", PLAIN.replace("odd thing", "odd thing \u00e9"), encoding="cp1252")
    with pytest.raises(ClassSetError, match=r"latin.csv: not UTF-8 text .*CSV UTF-8"):
        load_class_set(cp1252, check_length=False)

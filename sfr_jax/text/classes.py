"""Defect class sets: codes, explicit phrases, detailed descriptions, the seen/unseen split (SPEC §8).

Built-in sets live in sfr_jax/text/data/*.yaml. A user's own set is a YAML or CSV file with the fields
code, phrase, description, seen (and optionally ciw, Sewer-ML's class-importance weight, and codes, the
class's codes in inspection standards), e.g.

    name: my_pipes                          code,phrase,description,seen,codes.en13508,codes.pacp
    classes:                                RB,Cracks,"A sewer CCTV image of ...",true,BAB,CL
      - {code: RB, phrase: Cracks, description: "A sewer CCTV image of ...", seen: true,
         codes: {en13508: BAB, pacp: CL}}

In CSV each standard is a column `codes.<standard>`; an empty cell means no code in that standard. Standard
codes are carried to the outputs (inspect's events, the report) as given: they never change a score.

A class code is a token: 1 to 32 ASCII letters, digits, `_` or `-`, starting with a letter or digit
(CODE_RULE), and no two codes of a set may differ only in case. Codes become parts of file names (thumbnails)
and column names; `check_code` is the one place that enforces this, for every class set however it is made.
CSV files may come from Excel: a UTF-8 byte-order mark, CRLF line ends, `;` or tab as the separator, spaces
after the separators, header names in any case, and trailing empty columns are all read as plain CSV; a value
under a column without a name is an error, not dropped.
"""
import csv
import dataclasses
import io
import os
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np
import yaml

from sfr_jax.errors import InputError, MissingInput
from sfr_jax.fileio import write_text
from sfr_jax.text.tokenizer import ClipTokenizer

EVAL_MODES = ("zsl", "gzsl")  # the paper's two settings: the unseen classes only, all classes
MODES = ("train", *EVAL_MODES)  # which classes a forward scores: seen, unseen, all
CONTEXT_LENGTH = 77
_REQUIRED = ("code", "phrase", "description", "seen")
_OPTIONAL = ("ciw", "codes")
_CODES_COLUMN = "codes."  # CSV: one column per standard, codes.<standard>
_BUILTIN = ("sewerml", "wzpipe")
_TRUE = ("true", "yes", "1", "seen", "y")
_FALSE = ("false", "no", "0", "unseen", "n")
CODE_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
CODE_RULE_TEXT = "1-32 ASCII letters, digits, '_' or '-', starting with a letter or digit"


class ClassSetError(InputError):
    """A class-set file or value is invalid; the message names the file, class and field."""


@dataclass(frozen=True)
class DefectClass:
    """One defect class: short code, explicit phrase (class name), detailed description, seen in training?"""

    code: str
    phrase: str
    description: str
    seen: bool
    ciw: float | None = None
    standard_codes: tuple = ()  # ((standard, code), ...) in the file's order, e.g. (("en13508", "BAB"),)


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of defect classes; the order is the label-column order (seen first by convention)."""

    name: str
    classes: tuple[DefectClass, ...]

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ClassSetError(f"class set {self.name!r} has no classes")
        seen = {}
        for c in self.classes:
            check_code(c.code, f"class set {self.name!r}")
            if c.code.lower() in seen:
                same = "duplicate code" if seen[c.code.lower()] == c.code else \
                    f"code {c.code!r} differs from {seen[c.code.lower()]!r} only in case:"
                raise ClassSetError(f"class set {self.name!r}: {same} {c.code!r}")
            seen[c.code.lower()] = c.code

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.classes)

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(c.phrase for c in self.classes)

    @property
    def descriptions(self) -> tuple[str, ...]:
        return tuple(c.description for c in self.classes)

    @property
    def seen_ids(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.classes) if c.seen)

    @property
    def unseen_ids(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.classes) if not c.seen)

    @property
    def ciw(self) -> np.ndarray | None:
        """Class-importance weights [C] (Sewer-ML's F2-CIW), or None when any class lacks one."""
        if any(c.ciw is None for c in self.classes):
            return None
        return np.array([c.ciw for c in self.classes], dtype=np.float64)

    def ids(self, mode: str) -> tuple[int, ...]:
        """Class indices scored in a mode: 'train' = seen, 'zsl' = unseen, 'gzsl' = all."""
        if mode == "train":
            return self.seen_ids
        if mode == "zsl":
            return self.unseen_ids
        if mode == "gzsl":
            return tuple(range(self.num_classes))
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")

    def index(self, code: str) -> int:
        """Position of a class code."""
        try:
            return self.codes.index(code)
        except ValueError:
            raise KeyError(f"class set {self.name!r} has no class {code!r}; codes: {list(self.codes)}") from None

    def with_descriptions(self, path: str, *, check_length: bool = True) -> "ClassSet":
        """A copy whose descriptions are the lines of a text file, one per class in class order (the
        reference's datasets/text/*_de.txt format)."""
        lines = _read_lines(path, self.num_classes, "descriptions")
        out = self.replace(description=lines)
        if check_length:
            out.check_lengths(source=path)
        return out

    def replace(self, **columns) -> "ClassSet":
        """A copy with whole fields replaced, e.g. replace(description=[...one per class...])."""
        for field, values in columns.items():
            if len(values) != self.num_classes:
                raise ClassSetError(f"{field}: got {len(values)} values for {self.num_classes} classes")
        classes = [
            dataclasses.replace(c, **{field: values[i] for field, values in columns.items()})
            for i, c in enumerate(self.classes)
        ]
        return ClassSet(self.name, classes)

    def check_lengths(self, tokenizer=None, *, source: str | None = None, context_length: int = CONTEXT_LENGTH):
        """Raise ClassSetError naming the class when a phrase or description exceeds the CLIP context."""
        if tokenizer is None:
            tokenizer = ClipTokenizer.default()
        where = source or f"class set {self.name!r}"
        for c in self.classes:
            for field in ("phrase", "description"):
                try:
                    tokenizer.encode([getattr(c, field)], context_length=context_length)
                except ValueError as error:
                    raise ClassSetError(
                        f"{where}: class {c.code}: {field} is longer than the CLIP context of "
                        f"{context_length} tokens ({error})"
                    ) from None

    def to_dict(self) -> dict:
        """Plain data (the YAML file format); `class_set_from_dict` inverts it."""
        rows = []
        for c in self.classes:
            row = {"code": c.code, "phrase": c.phrase, "description": c.description, "seen": c.seen}
            if c.ciw is not None:
                row["ciw"] = c.ciw
            if c.standard_codes:
                row["codes"] = dict(c.standard_codes)
            rows.append(row)
        return {"name": self.name, "classes": rows}

    def save(self, path: str):
        """Write the set as YAML, atomically."""
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=1000))


def check_code(code, where: str) -> str:
    """`code` when it is a token by CODE_RULE (module docstring), else a ClassSetError naming `where` and it."""
    if not isinstance(code, str) or not CODE_RULE.fullmatch(code):
        raise ClassSetError(f"{where}: code {code!r} is not allowed; a code is {CODE_RULE_TEXT}")
    return code


def _read_lines(path: str, expected: int, what: str) -> list[str]:
    if not os.path.isfile(path):
        raise MissingInput(f"{what} file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    lines = [line for line in lines if line]
    if len(lines) != expected:
        raise ClassSetError(f"{path}: {len(lines)} non-empty lines, expected one per class ({expected})")
    return lines


def _parse_seen(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ClassSetError(f"{where}: seen must be true/false (or seen/unseen), got {value!r}")


def _parse_class(row: dict, where: str) -> DefectClass:
    if not isinstance(row, dict):
        raise ClassSetError(f"{where}: expected a mapping with fields {_REQUIRED}, got {row!r}")
    unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ClassSetError(f"{where}: unknown field(s) {unknown}; allowed: {_REQUIRED + _OPTIONAL}")
    for field in _REQUIRED:
        value = row.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ClassSetError(f"{where}: missing field {field!r}")
    code = check_code(str(row["code"]).strip(), where)
    where = f"{where} (code {code})"
    for field in ("phrase", "description"):
        if not isinstance(row[field], str):
            raise ClassSetError(f"{where}: {field} must be text, got {row[field]!r}")
    ciw = row.get("ciw")
    if ciw is not None and not (isinstance(ciw, str) and not ciw.strip()):
        try:
            ciw = float(ciw)
        except (TypeError, ValueError):
            raise ClassSetError(f"{where}: ciw must be a number, got {ciw!r}") from None
        if not ciw >= 0:
            raise ClassSetError(f"{where}: ciw must be >= 0, got {ciw}")
    else:
        ciw = None
    return DefectClass(
        standard_codes=_parse_codes(row.get("codes"), where),
        code=code,
        phrase=" ".join(row["phrase"].split()),
        description=" ".join(row["description"].split()),
        seen=_parse_seen(row["seen"], where),
        ciw=ciw,
    )


def _parse_codes(value, where: str) -> tuple:
    """codes: {standard: code} -> ((standard, code), ...); empty codes are dropped (a CSV's empty cell)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ClassSetError(f"{where}: codes must map a standard to its code, e.g. {{en13508: BAB, pacp: CL}}, "
                            f"got {value!r}")
    out = []
    for standard, code in value.items():
        standard = str(standard).strip()
        if not standard or any(ch.isspace() for ch in standard):
            raise ClassSetError(f"{where}: codes: {standard!r} is not a standard's name (one word, e.g. en13508)")
        if isinstance(code, (dict, list)):
            raise ClassSetError(f"{where}: codes: {standard}: expected one code, got {code!r}")
        if code is not None and str(code).strip():
            out.append((standard, str(code).strip()))
    return tuple(out)


def class_set_from_dict(data, name: str, source: str = "<dict>", places=None) -> ClassSet:
    """Build a validated ClassSet from {name?, classes: [rows]} or a bare list of rows; `places` names each
    row in errors (default "class #N"; a CSV passes its line numbers)."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"name", "classes"})
        if unknown or "classes" not in data:
            raise ClassSetError(f"{source}: expected keys 'name' (optional) and 'classes', got {sorted(data)}")
        name, rows = str(data.get("name") or name), data["classes"]
    else:
        rows = data
    if not isinstance(rows, list) or not rows:
        raise ClassSetError(f"{source}: 'classes' must be a non-empty list of classes")
    places = places or [f"class #{i + 1}" for i in range(len(rows))]
    classes = [_parse_class(row, f"{source}: {place}") for row, place in zip(rows, places)]
    try:
        return ClassSet(name, classes)
    except ClassSetError as error:
        raise ClassSetError(f"{source}: {error}") from None


def _read_csv(path: str) -> tuple[list[dict], list[str]]:
    """(rows as {field: text}, "line N" of each) of a class CSV, Excel's dialect accidents forgiven."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
            text = f.read()
    except UnicodeDecodeError as error:
        raise ClassSetError(f"{path}: not UTF-8 text (byte {error.start}); save it as 'CSV UTF-8'") from None
    first = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")  # Excel writes ';' in some locales
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [h for h in _REQUIRED if h not in header]
    if missing:
        raise ClassSetError(f"{path}: CSV header {[h for h in header if h]} lacks column(s) {missing}")
    rows, places = [], []
    for values in reader:
        line = f"line {reader.line_num}"
        if not any(v.strip() for v in values):
            continue
        extra = values[len(header):]
        if any(v.strip() for v in extra):
            raise ClassSetError(f"{path}: {line} has more values than the header")
        named = {}
        for name, value in zip(header, values):
            if not name and value.strip():
                raise ClassSetError(f"{path}: {line}: value {value.strip()!r} under a column without a name")
            if name:
                named[name] = value
        codes = {k[len(_CODES_COLUMN):]: v for k, v in named.items() if k.startswith(_CODES_COLUMN)}
        named = {k: v for k, v in named.items() if not k.startswith(_CODES_COLUMN)}
        if codes:
            named["codes"] = codes
        rows.append(named)
        places.append(line)
    return rows, places


def load_class_set(name_or_path: str, *, descriptions: str | None = None, check_length: bool = True,
                   tokenizer=None) -> ClassSet:
    """A built-in set ('sewerml', 'wzpipe') or a user's .yaml/.yml/.csv file, validated; `descriptions`
    optionally replaces the descriptions with a one-per-line text file."""
    if name_or_path in _BUILTIN:
        text = resources.files("sfr_jax.text").joinpath("data", f"{name_or_path}.yaml").read_text("utf-8")
        class_set = class_set_from_dict(yaml.safe_load(text), name_or_path, f"built-in {name_or_path}")
        check_length = check_length and descriptions is not None  # ours are checked by the tests
    else:
        path = name_or_path
        if not os.path.isfile(path):
            raise MissingInput(f"class set {path!r} is neither a built-in ({', '.join(_BUILTIN)}) nor a file")
        stem, ext = os.path.splitext(os.path.basename(path))
        if ext.lower() in (".yaml", ".yml"):
            places = None
            with open(path, encoding="utf-8-sig") as f:
                try:
                    data = yaml.safe_load(f)
                except yaml.YAMLError as error:
                    raise ClassSetError(f"{path}: not valid YAML ({error})") from None
                except UnicodeDecodeError as error:
                    raise ClassSetError(f"{path}: not UTF-8 text (byte {error.start})") from None
        elif ext.lower() == ".csv":
            data, places = _read_csv(path)
        else:
            raise ClassSetError(f"{path}: class set files must end in .yaml, .yml or .csv")
        class_set = class_set_from_dict(data, stem, path, places)
    if descriptions is not None:
        class_set = class_set.with_descriptions(descriptions, check_length=False)
    if check_length:
        class_set.check_lengths(tokenizer, source=descriptions or name_or_path)
    return class_set


def check_class_file(path: str) -> ClassSet:
    """A user's class file read and validated but for token lengths (they need the model's tokenizer): the
    cheap check a verb runs before it loads a model; errors say "invalid class file", as the load's do."""
    try:
        return load_class_set(path, check_length=False)
    except ClassSetError as error:
        raise ClassSetError(f"invalid class file: {error}") from None


def sewerml() -> ClassSet:
    """Sewer-ML's 17 classes in SFR-Net order (12 seen, 5 unseen) with CIW weights and our descriptions."""
    return load_class_set("sewerml", check_length=False)


def wzpipe() -> ClassSet:
    """WZ-Pipe's 17 classes in SFR-Net order (12 seen, 5 unseen) with our descriptions."""
    return load_class_set("wzpipe", check_length=False)

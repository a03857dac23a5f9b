"""The Extensions Index entry (ExtensionsIndex/RaGAN.json) passes the Index's automated checks that can run offline:
its published schema (slicer-extension-catalog-entry-schema v1.0.2), LF line endings, the extension and repository
names, the category, and CMakeLists.txt's project name and URLs, which all point into the one public repository.

data/slicer-extension-catalog-entry-schema-v1.0.2.json is the schema file Slicer publishes (github.com/Slicer/Slicer,
Schemas/, Slicer License), the file the Index's check downloads from the entry's "$schema" URL.
"""

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from slicer_test_support import MODULE_FOLDER, REPOSITORY

ENTRY = REPOSITORY / "ExtensionsIndex" / "RaGAN.json"
SCHEMA = Path(__file__).resolve().parent / "data" / "slicer-extension-catalog-entry-schema-v1.0.2.json"
REPOSITORY_URL = "https://github.com/RaGAN-project/SlicerRaGAN"
TYPES = {"object": dict, "string": str, "array": list, "boolean": bool, "integer": int}
# JSON-schema keywords this validator applies; a schema using any other keyword fails the test instead of passing it.
APPLIED = {"type", "required", "additionalProperties", "properties", "enum", "items", "minimum", "maximum"}
ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "additionalItems"}


def schema_problems(value, schema: dict, where: str = "entry") -> list[str]:
    """What in `value` breaks `schema` (draft-07, the keywords in APPLIED)."""
    unknown = set(schema) - APPLIED - ANNOTATIONS
    if unknown:
        return [f"{where}: the schema uses {sorted(unknown)}, which this test does not apply"]
    expected = TYPES.get(schema.get("type"), object)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return [f"{where}: {value!r} is not of type {schema['type']}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        found.append(f"{where}: {value!r} is outside {schema.get('minimum')}..{schema.get('maximum')}")
    if isinstance(value, dict):
        found += [f"{where}: no {key}" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                found += schema_problems(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                found.append(f"{where}: {key} is not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += schema_problems(item, schema["items"], f"{where}[{index}]")
    return found


def cmake_values() -> dict[str, str]:
    return dict(re.findall(r'set\((EXTENSION_\w+) "(.*?)"\)', (REPOSITORY / "CMakeLists.txt").read_text()))


def test_the_entry_fits_the_published_schema_it_names():
    entry = json.loads(ENTRY.read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert entry["$schema"].split("#")[0] == schema["$id"].split("#")[0], "the entry names the schema tested here"
    assert schema_problems(entry, schema) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: {k: v for k, v in e.items() if k != "category"}, "entry: no category"),
        (lambda e: {**e, "tier": 9}, "entry.tier: 9 is outside 1..5"),
        (lambda e: {**e, "scm_type": "svn"}, "entry.scm_type: 'svn' is not one of"),
        (lambda e: {**e, "homepage": "x"}, "entry: homepage is not allowed"),
        (lambda e: {**e, "build_dependencies": ["A", 3]}, "entry.build_dependencies[1]: 3 is not of type string"),
    ],
)
def test_the_schema_check_catches_what_the_index_would_refuse(change, problem):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    found = schema_problems(change(json.loads(ENTRY.read_text(encoding="utf-8"))), schema)
    assert any(p.startswith(problem) for p in found), found


def test_the_entry_passes_the_indexs_name_category_and_format_checks():
    raw = ENTRY.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n"), "LF line endings only"
    entry = json.loads(raw)
    name = ENTRY.stem
    assert not name.lower().startswith("slicer"), "the extension name must not start with Slicer"
    url = urllib.parse.urlsplit(entry["scm_url"])
    assert url.scheme == "https" and entry["scm_url"] == REPOSITORY_URL
    assert url.path.rstrip("/").split("/")[-1].startswith("Slicer"), "the repository name must start with Slicer"
    assert re.search(rf"^project\({name}\)", (REPOSITORY / "CMakeLists.txt").read_text(), re.M), "project() == name"
    assert entry["category"] == cmake_values()["EXTENSION_CATEGORY"] == "Image Synthesis"
    assert (REPOSITORY / "LICENSE").is_file()


def test_every_url_points_into_the_public_repository_at_files_that_exist():
    entry = json.loads(ENTRY.read_text(encoding="utf-8"))
    values = cmake_values()
    raw = f"https://raw.githubusercontent.com/{urllib.parse.urlsplit(REPOSITORY_URL).path.strip('/')}/"
    images = [values["EXTENSION_ICONURL"], *values["EXTENSION_SCREENSHOTURLS"].split()]
    for image in images:
        assert image.startswith(raw + entry["scm_revision"] + "/"), image
        assert (REPOSITORY / image.split(f"/{entry['scm_revision']}/", 1)[1]).is_file(), f"{image}: no such file"
    assert values["EXTENSION_HOMEPAGE"].startswith(REPOSITORY_URL + "#")
    help_links = re.findall(r'href="(https://github\.com/[^"#]+)', (MODULE_FOLDER / "RaGAN.py").read_text())
    assert help_links and set(help_links) == {REPOSITORY_URL}, help_links

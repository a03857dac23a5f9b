"""Packaging: Slicer's extension build ships only the files CMake lists, so every file of the module and of RaGANLib
must be listed (module) or matched by the install globs (RaGANLib)."""

import fnmatch
import re

from slicer_test_support import MODULE_FOLDER, REPOSITORY


def cmake_list(text: str, variable: str, substitutions: dict[str, str]) -> list[str]:
    """The items of `set(<variable> ...)` in a CMakeLists text, with ${VAR} substituted."""
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    items = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    result = []
    for item in filter(None, items):
        for name, value in substitutions.items():
            item = item.replace("${" + name + "}", value)
        result.append(item)
    return result


def files_under(folder, skip_suffixes=(".pyc",)) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in skip_suffixes
    }


def test_every_module_file_is_listed_for_packaging():
    text = (MODULE_FOLDER / "CMakeLists.txt").read_text()
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS", {"MODULE_NAME": "RaGAN"})
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES", {"MODULE_NAME": "RaGAN"})
    on_disk = files_under(MODULE_FOLDER) - {"CMakeLists.txt"}

    python_files = {f for f in on_disk if f.endswith(".py")}
    assert python_files == set(scripts), (
        f"not listed: {python_files - set(scripts)}, stale: {set(scripts) - python_files}"
    )
    resource_files = on_disk - python_files
    assert resource_files == set(resources), (
        f"not listed: {resource_files - set(resources)}, stale: {set(resources) - resource_files}"
    )
    assert "slicerMacroBuildScriptedModule" in text


def test_the_root_globs_ship_every_file_of_ragan_lib_beside_the_module():
    text = (REPOSITORY / "CMakeLists.txt").read_text()
    assert re.search(r"project\(RaGAN\)", text)
    assert "add_subdirectory(RaGAN)" in text
    patterns = []
    for variable in ("RaGANLib_PYTHON_SCRIPTS", "RaGANLib_PYTHON_RESOURCES"):
        match = re.search(
            rf"file\(GLOB_RECURSE {variable} RELATIVE \$\{{CMAKE_CURRENT_SOURCE_DIR\}}(.*?)\)", text, re.S
        )
        assert match, f"file(GLOB_RECURSE {variable} ...) not found"
        patterns += match.group(1).split()
    excluded = re.search(r'list\(FILTER RaGANLib_PYTHON_RESOURCES EXCLUDE REGEX "(.*?)"\)', text).group(1)
    excluded = excluded.replace("\\\\", "\\")  # CMake unescapes its strings: "\\." in the file is the regex \.
    package = REPOSITORY / "RaGANLib"
    files = {f"RaGANLib/{f}" for f in files_under(package, skip_suffixes=())}
    assert "RaGANLib/__init__.py" in files
    # CMake's GLOB_RECURSE "RaGANLib/*.py" matches at any depth, like fnmatch's "*" (which also crosses "/").
    scripts = {f for f in files if fnmatch.fnmatchcase(f, patterns[0])}
    resources = {f for f in files if fnmatch.fnmatchcase(f, patterns[1]) and not re.search(excluded, f)}
    shipped_source = {f for f in files if "__pycache__" not in f and not f.endswith(".pyc")}
    assert scripts | resources == shipped_source, f"not shipped: {sorted(shipped_source - scripts - resources)}"
    assert not scripts & resources and all(f.endswith(".py") for f in scripts)
    # Installed into the scripted-modules folder, beside RaGAN.py, where the module looks for it.
    call = re.search(r"ctkMacroCompilePythonScript\((.*?)\)\n", text, re.S).group(1)
    assert '"${RaGANLib_PYTHON_SCRIPTS}"' in call and '"${RaGANLib_PYTHON_RESOURCES}"' in call
    assert "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}" in call
    assert "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}" in call


def test_extension_metadata_is_complete():
    text = (REPOSITORY / "CMakeLists.txt").read_text()
    values = dict(re.findall(r'set\((EXTENSION_\w+) "(.*?)"\)', text))
    assert values["EXTENSION_CATEGORY"] == "Image Synthesis"
    assert values["EXTENSION_DEPENDS"] == "NA"
    for key in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert values.get(f"EXTENSION_{key}"), f"EXTENSION_{key} is empty"
    assert values["EXTENSION_ICONURL"].endswith("/RaGAN.png") and (REPOSITORY / "RaGAN.png").is_file()
    assert (REPOSITORY / "LICENSE").is_file()
    from PIL import Image

    for icon in (REPOSITORY / "RaGAN.png", MODULE_FOLDER / "Resources" / "Icons" / "RaGAN.png"):
        assert Image.open(icon).size == (128, 128)

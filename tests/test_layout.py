"""The package's structure: dependencies point one way (style: cli -> pipeline -> export / importer /
deploy / measure -> nirfmt -> core), no import cycles, deploy never imports train, and docs/architecture.md's
Layout section names every package. Imports are read from the source (every ``import`` statement,
also those inside functions), so a lazy import counts like any other."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import spikeport

ROOT = Path(spikeport.__file__).parent
ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"  # the Layout section (moved from the README)
# package -> the spikeport packages it may import (besides itself). Lower rooms never import higher ones.
ALLOWED = {
    "errors": set(),
    "files": {"errors"},
    "core": {"errors"},
    "data": {"errors", "files"},
    "nirfmt": {"errors", "files", "core"},
    "measure": {"errors", "files", "core"},
    "train": {"errors", "files", "core", "data", "measure"},
    "deploy": {"errors", "files", "core", "nirfmt"},
    "export": {"errors", "files", "core", "data", "nirfmt", "train", "deploy"},
    "importer": {"errors", "files", "core", "nirfmt", "deploy", "measure", "train"},  # train: fine-tuning (importer.finetune_net)
    "pipeline": {"errors", "files", "core", "data", "nirfmt", "deploy", "measure", "train", "importer"},
    "report": {"errors", "files", "core", "measure"},
    "cli": {"errors", "files", "pipeline", "report", "train", "export", "importer", "core"},
}


def module_name(path: Path) -> str:
    parts = ("spikeport",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of the spikeport modules ``path`` imports (relative imports resolved)."""
    name, out = module_name(path), set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("spikeport.")}


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {t for t in imports(p) if t in mods and t != m and not m.startswith(t + ".")} for m, p in mods.items()}


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_no_import_cycles():
    g, state, cycles = graph(), {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_rooms_import_only_downwards():
    wrong = []
    for m, targets in graph().items():
        r = room(m)
        if r not in ALLOWED:
            continue
        for t in targets:
            tr = room(t)
            if tr and tr != r and tr not in ALLOWED[r] and ".".join(t.split(".")[1:3]) not in ALLOWED[r]:
                wrong.append(f"{m} imports {t}")
    assert wrong == []


def test_every_room_is_known_and_deploy_never_imports_train():
    rooms = {room(m) for m in graph()} - {""}
    assert rooms <= set(ALLOWED), f"packages missing from the layout rules: {rooms - set(ALLOWED)}"
    assert not [t for m, ts in graph().items() if room(m) == "deploy" for t in ts if room(t) == "train"]


def test_architecture_layout_names_every_package():
    section = ARCHITECTURE.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"spikeport/(\w+)", section))
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= listed, f"docs/architecture.md's Layout misses {packages - listed}"


def test_the_rules_catch_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a package that imports upward and in a circle is reported."""
    pkg = tmp_path / "spikeport"
    (pkg / "core").mkdir(parents=True)
    (pkg / "deploy").mkdir()
    (pkg / "train").mkdir()
    for d in (pkg, pkg / "core", pkg / "deploy", pkg / "train"):
        (d / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from spikeport.deploy import b\n")
    (pkg / "deploy" / "b.py").write_text("def f():\n    from spikeport.core import a\n    import spikeport.train.c\n")
    (pkg / "train" / "c.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg, raising=False)
    globals()["ROOT"] = pkg
    try:
        g = graph()
        assert "spikeport.core.a" in g["spikeport.deploy.b"] and "spikeport.deploy.b" in g["spikeport.core.a"]
        assert "spikeport.train.c" in g["spikeport.deploy.b"]
    finally:
        globals()["ROOT"] = Path(spikeport.__file__).parent

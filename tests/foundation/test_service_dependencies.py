"""Services take what they use (issue 10 item 2): typed parameters or a frozen deps dataclass built on
App, never the whole App nor an `Any` where the type is known."""

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "src" / "shortage_watch" / "services"

WHOLE_APP_OR_ANY = {"Any", "App"}


def _bare(annotation: ast.expr | None) -> set[str]:
    """The names an annotation is, at its top level (`Any`, `"App"`, `App | None`); not those nested
    in a container (`dict[str, Any]` is a JSON document, not an unknown type)."""
    if annotation is None:
        return set()
    if isinstance(annotation, ast.Name):
        return {annotation.id}
    if isinstance(annotation, ast.Attribute):
        return {annotation.attr}
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return _bare(ast.parse(annotation.value, mode="eval").body)
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _bare(annotation.left) | _bare(annotation.right)
    return set()


def _offending_parameters(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        parameters = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
        for parameter in parameters:
            if parameter.arg == "app" or _bare(parameter.annotation) & WHOLE_APP_OR_ANY:
                found.append(f"{node.name}({parameter.arg}: {ast.unparse(parameter.annotation) if parameter.annotation else ''})")
    return found


def test_services_take_typed_dependencies_not_the_app() -> None:
    offenders = {path.name: _offending_parameters(path.read_text(encoding="utf-8")) for path in sorted(SERVICES.glob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_scan_finds_each_way_of_taking_the_app() -> None:
    cases = {
        "def f(app, now): ...": ["f(app: )"],
        "def f(app: object): ...": ["f(app: object)"],
        "def f(deps: 'App'): ...": ["f(deps: 'App')"],
        "def f(directory: Any | None): ...": ["f(directory: Any | None)"],
        "class L:\n    def __init__(self, owner: Any): ...": ["__init__(owner: Any)"],
        "def f(**alert: Any): ...": ["f(alert: Any)"],
        "def f(session: Session, context: dict[str, Any], deps: DeliverDeps): ...": [],
    }
    for source, expected in cases.items():
        assert _offending_parameters(source) == expected, source

"""The shape the design card asks for, checked on the source: one sender, dependency direction,
sans-I/O cores, and simple mode with no gate of any kind."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("actors", "gateway", "storage", "prompts")


def modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "migrations" not in p.parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_the_tx_pacer_builds_twilio_messages() -> None:
    builders = []
    for package in PRODUCT:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("ToTwilio", "TwMedia"):
                    builders.append(str(path.relative_to(REPO)))
    assert set(builders) == {"actors/cores/pacer.py"}


def test_cores_are_sans_io() -> None:
    forbidden = {"asyncio", "socket", "websockets", "thespian", "thespian.actors", "openai", "sqlalchemy", "time"}
    for path in modules("actors/cores"):
        roots = {name.split(".")[0] for name in imports(path)}
        assert not roots & {f.split(".")[0] for f in forbidden}, f"{path.name} imports {roots & forbidden}"


def test_dependencies_point_one_way() -> None:
    def roots(package: str) -> set[str]:
        return {name.split(".")[0] for path in modules(package) for name in imports(path)}
    assert not roots("storage") & {"actors", "gateway"}
    assert not roots("prompts") & {"actors", "gateway", "storage"}
    assert not roots("actors") & {"gateway", "storage"}
    assert not roots("sim") & {"actors", "gateway", "storage", "prompts"}  # wire protocols only


def test_simple_mode_has_no_gate_anywhere() -> None:
    """Caller frames are forwarded by TwilioRx unconditionally: no branch may decide not to append."""
    rx = ast.parse((REPO / "actors/cores/twilio_rx.py").read_text(encoding="utf-8"))
    handle = next(n for n in ast.walk(rx) if isinstance(n, ast.FunctionDef) and n.name == "handle")
    media_branch = next(n for n in handle.body if isinstance(n, ast.If) and "TwilioMediaIn" in ast.unparse(n.test))
    returns = [n for n in ast.walk(media_branch) if isinstance(n, ast.Return)]
    assert len(returns) == 1  # the media branch has a single exit, after the append is built
    source = "\n".join(p.read_text(encoding="utf-8") for pkg in PRODUCT for p in modules(pkg))
    for setting in ("simple_mode =", "audio_guard_enabled =", "music_mode_enabled =", "noise_gate_min_frames ="):
        assert source.count(setting) <= 1, setting  # declared once (AudioSettings); set only by config.toml


def test_the_gateway_is_layered() -> None:
    """The CLI and the demo sit on top (gateway/cli); the socket layer, the runtime (engine, ticker,
    workers), the config and the control link never import them; the runtime knows no socket module and
    the config no runtime."""
    def gateway_imports(sub: str) -> set[str]:
        return {name for path in modules(f"gateway/{sub}") for name in imports(path) if name.startswith("gateway")}
    below_cli = {name for path in modules("gateway") if "cli" not in path.relative_to(REPO / "gateway").parts
                 for name in imports(path)}
    assert not {n for n in below_cli if n.startswith("gateway.cli")}
    assert not {n for n in gateway_imports("runtime") if n.startswith(("gateway.server", "gateway.app", "gateway.call"))}
    assert not {n for n in gateway_imports("config") if n.startswith(("gateway.runtime", "gateway.app", "gateway.server"))}
    assert not {n for n in gateway_imports("control") if n.startswith(("gateway.server", "gateway.runtime"))}


def test_messages_are_split_by_vocabulary() -> None:
    """Settings, ingress events, outgoing wire events, lifecycle and internal decisions each in their own
    module; every class name unique across them (thespian routes by class name)."""
    names: list[str] = []
    for module in ("settings", "ingress_messages", "wire_messages", "lifecycle_messages", "messages",
                   "agent_messages", "link_messages", "lane_messages", "control_messages", "language_messages"):
        tree = ast.parse((REPO / "actors" / f"{module}.py").read_text(encoding="utf-8"))
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        if module == "settings":
            assert all(c.endswith("Settings") for c in classes), classes
        names += classes
    assert len(names) == len(set(names))
